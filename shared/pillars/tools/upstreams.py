"""From registry servers to upstream endpoints, and the upstream sessions the gateway holds with them.

A 2025-era client's session id carries the upstream session ids negotiated at its `initialize`, so any instance
reuses them. Calls without such a session (2026 clients, servers added since) use a per-instance pool keyed by
(replica, caller) — never shared between callers, since upstream session state (log level, subscriptions) is
per client — bounded and expiring. A session the server has forgotten (HTTP 404) is renegotiated once.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .domain import McpServer
from .mcp.session import UpstreamSession
from .mcp.upstream import Endpoint, McpUpstream, UpstreamFailure, UpstreamSessionLost


class AuthHeaders(Protocol):
    async def __call__(self, server: McpServer) -> dict[str, str]: ...


_Route = tuple[str, str, str, int, int]  # endpoint id, url, transport, priority, weight


class _Routes:
    """Each server's replicas as plain tuples, computed once per server object: a registry snapshot's servers are
    replaced (new objects) when the registry changes, so the entry is keyed by the object — by id, holding the
    object so the id cannot be reused while the entry lives — and checked against the very spec, URL, replica list
    and transport objects it was computed from (an in-place edit misses). Bounded (oldest out)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._by_server: OrderedDict[int, tuple[tuple[Any, ...], tuple[_Route, ...]]] = OrderedDict()
        self._max = max_entries

    def of(self, server: McpServer) -> tuple[_Route, ...]:
        spec = server.spec
        found = self._by_server.get(id(server))
        if found is not None:
            s = found[0]  # identity of each object the routes were computed from (no generator per call)
            if s[0] is server and s[1] is server.id and s[2] is spec and s[3] is spec.url \
                    and s[4] is spec.replicas and s[5] is spec.transport:
                return found[1]
        source = (server, server.id, spec, spec.url, spec.replicas, spec.transport)
        transport = "sse" if spec.transport == "sse" else "streamable_http"
        routes = tuple((f"{server.id}/{t.id}", str(t.url), transport, t.priority, t.weight)
                       for t in server.targets())
        self._by_server[id(server)] = (source, routes)
        if len(self._by_server) > self._max:
            self._by_server.popitem(last=False)
        return routes


_ROUTES = _Routes()


async def endpoints(server: McpServer, auth: AuthHeaders) -> list[Endpoint]:
    """The server's replicas with this call's outbound auth headers (resolved per call: tokens expire)."""
    headers = await auth(server)
    return [Endpoint(id=i, url=url, transport=transport, headers=headers, priority=priority, weight=weight)
            for i, url, transport, priority, weight in _ROUTES.of(server)]


class SessionPool:
    def __init__(self, upstream: McpUpstream, *, ttl_seconds: float = 300, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._upstream = upstream
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._pool: OrderedDict[tuple[str, str], tuple[UpstreamSession, float]] = OrderedDict()

    async def session(self, ep: Endpoint, caller: str, carried: dict[str, UpstreamSession] | None = None
                      ) -> UpstreamSession:
        if carried and ep.id in carried:
            return carried[ep.id]
        key = (ep.id, caller)
        found = self._pool.get(key)
        if found is not None and found[1] > self._clock():
            return found[0]
        fresh = await self._upstream.connect(ep)
        self._pool[key] = (fresh, self._clock() + self._ttl)
        self._pool.move_to_end(key)
        while len(self._pool) > self._max:
            self._pool.popitem(last=False)
        return fresh

    def forget(self, ep: Endpoint, caller: str, carried: dict[str, UpstreamSession] | None) -> None:
        self._pool.pop((ep.id, caller), None)
        if carried is not None:
            carried.pop(ep.id, None)

    async def request(self, ep: Endpoint, caller: str, carried: dict[str, UpstreamSession] | None, method: str,
                      params: dict[str, Any], on_server_request: Callable[[dict[str, Any]],
                                                                          Awaitable[dict[str, Any]]] | None = None,
                      *, timeout: float | None = None, max_bytes: int | None = None,
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
        session = await self.session(ep, caller, carried)
        try:
            return await self._upstream.request(ep, session, method, params, on_server_request, timeout=timeout,
                                                max_bytes=max_bytes, headers=headers)
        except UpstreamSessionLost:
            self.forget(ep, caller, carried)
        session = await self.session(ep, caller, None)
        try:
            return await self._upstream.request(ep, session, method, params, on_server_request, timeout=timeout,
                                                max_bytes=max_bytes, headers=headers)
        except UpstreamSessionLost:
            # lost again at once (a stateful server behind a balancer without affinity): this replica cannot hold
            # a session — a transport failure, so the call fails over or answers -32033, never an internal error
            self.forget(ep, caller, None)
            raise UpstreamFailure(f"server {ep.id} lost its MCP session again right after it was negotiated") \
                from None
