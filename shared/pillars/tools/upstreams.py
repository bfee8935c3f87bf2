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
from .mcp.upstream import Endpoint, McpUpstream, UpstreamSessionLost


class AuthHeaders(Protocol):
    async def __call__(self, server: McpServer) -> dict[str, str]: ...


async def endpoints(server: McpServer, auth: AuthHeaders) -> list[Endpoint]:
    headers = await auth(server)
    transport = "sse" if server.spec.transport == "sse" else "streamable_http"
    return [Endpoint(id=f"{server.id}/{t.id}", url=str(t.url), transport=transport, headers=headers,
                     priority=t.priority, weight=t.weight) for t in server.targets()]


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
                      *, timeout: float | None = None, max_bytes: int | None = None) -> dict[str, Any]:
        session = await self.session(ep, caller, carried)
        try:
            return await self._upstream.request(ep, session, method, params, on_server_request, timeout=timeout,
                                                max_bytes=max_bytes)
        except UpstreamSessionLost:
            self.forget(ep, caller, carried)
            session = await self.session(ep, caller, None)
            return await self._upstream.request(ep, session, method, params, on_server_request, timeout=timeout,
                                                max_bytes=max_bytes)
