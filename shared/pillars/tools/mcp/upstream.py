"""The gateway as an MCP *client* of one upstream server, over the HTTP transports every revision defines:
streamable HTTP (2025-03-26+, JSON or SSE responses, `Mcp-Session-Id`), the per-request era (2026-07-28,
`server/discover`, `_meta` envelope, routing headers) and the 2024-11-05 HTTP+SSE transport.

Negotiation is per server: `connect` probes `server/discover` only for servers registered as speaking the
per-request era, otherwise runs `initialize` at our latest handshake revision and keeps what the server picks.
Every connection goes through the egress-guarded client (`shared/upstreams/egress_transport.py`).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from . import jsonrpc as rpc
from . import revisions as rev
from .bridge import strip_envelope
from .session import UpstreamSession
from .sse import events
from ....pipeline.correlation import with_meta
from .wire import HttpxWire, Wire, WireResponse, lines

log = logging.getLogger(__name__)

Transport = Literal["streamable_http", "sse"]
GATEWAY_INFO = {"name": "ai-gateway", "version": "1.0"}
_ids = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """How to reach one server replica (a failover Target: id, priority, weight)."""

    id: str
    url: str
    transport: Transport = "streamable_http"
    modern: bool | None = None      # None: probe server/discover once per connect; False: handshake only
    headers: dict[str, str] = field(default_factory=dict)  # outbound auth, resolved by the registry
    priority: int = 0
    weight: int = 1


@dataclass(frozen=True)
class _Limits:
    timeout: float
    max_bytes: int


class UpstreamFailure(Exception):
    """Transport-level failure (unreachable, refused by egress, non-MCP answer): try another replica."""


class UpstreamSessionLost(Exception):
    """The server no longer knows our session (HTTP 404 with a session id): re-initialize."""


ServerRequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class McpUpstream:
    """`http` serves the 2024-11-05 HTTP+SSE transport; `wire` every streamable-HTTP POST (default: `http`)."""

    def __init__(self, http: httpx.AsyncClient, *, timeout: float, max_bytes: int, wire: Wire | None = None,
                 trace: Callable[[], dict[str, str]] | None = None) -> None:
        self._http = http
        self._wire = wire or HttpxWire(http)
        self._trace = trace  # telemetry on: the current span's W3C trace context, sent in every request's _meta
        self._timeout = timeout
        self._max = max_bytes

    # ---- negotiation

    async def connect(self, ep: Endpoint) -> UpstreamSession:
        if ep.transport == "sse":
            return UpstreamSession(version=rev.LEGACY_SSE)
        if ep.modern is not False:
            try:
                found = await self._post(ep, UpstreamSession(version=rev.LATEST_MODERN), "server/discover", {})
                if any(v in rev.MODERN for v in found.get("supportedVersions", [])):
                    return UpstreamSession(version=rev.LATEST_MODERN)
            except (rpc.Fault, UpstreamFailure):
                pass  # not modern evidence: fall back to the handshake, like the SDKs' auto mode
        return await self._initialize(ep)

    async def _initialize(self, ep: Endpoint) -> UpstreamSession:
        params = {"protocolVersion": rev.LATEST_HANDSHAKE, "capabilities": {}, "clientInfo": GATEWAY_INFO}
        resp, headers = await self._exchange(ep, None, rpc.request(next(_ids), "initialize", params), {})
        res = _unwrap(resp)
        version = res.get("protocolVersion")
        if version not in rev.HANDSHAKE:
            raise UpstreamFailure(f"server {ep.id} chose unsupported protocol version {str(version)[:32]!r}")
        session = UpstreamSession(version=version, session_id=headers.get(rev.SESSION_HEADER.lower()))
        await self._exchange(ep, session, rpc.notification("notifications/initialized"), {})
        return session

    # ---- requests

    def request(self, ep: Endpoint, session: UpstreamSession, method: str, params: dict[str, Any],
                on_server_request: ServerRequestHandler | None = None, *, timeout: float | None = None,
                max_bytes: int | None = None, headers: dict[str, str] | None = None
                ) -> Coroutine[Any, Any, dict[str, Any]]:
        """Awaitable: the upstream's result object, or `rpc.Fault` carrying its JSON-RPC error. `timeout` and
        `max_bytes` lower the defaults for one call (a tool's own limits). A plain function handing back the
        transport's coroutine: no await level of its own in every call's chain."""
        limits = _Limits(min(timeout or self._timeout, self._timeout), min(max_bytes or self._max, self._max))
        if self._trace is not None:
            params = with_meta(params, self._trace())
        if ep.transport == "sse":
            return self._legacy_sse(ep, method, strip_envelope(params), limits)
        return self._post(ep, session, method, params, on_server_request, limits, headers)

    async def _post(self, ep: Endpoint, session: UpstreamSession, method: str, params: dict[str, Any],
                    on_server_request: ServerRequestHandler | None = None, limits: "_Limits | None" = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
        extra: dict[str, str] = {}
        if rev.is_modern(session.version):
            meta = params.get("_meta") or {}  # capabilities the gateway declares for this request (tasks) stay
            params = {**params, "_meta": {**meta, **rev.modern_meta(session.version,
                                                                  meta.get(rev.CLIENT_CAPABILITIES_KEY))}}
            extra = rev.modern_headers(session.version, method, params)
            if headers:  # `Mcp-Param-*` a 2026 server reads (handshake-era servers define none)
                extra.update(headers)
        else:  # a handshake-era server: the 2026 envelope keys (the capabilities declared above) are not its own
            params = strip_envelope(params)
        resp, _ = await self._exchange(ep, session, rpc.request(next(_ids), method, params), extra,
                                       on_server_request, limits)
        return _unwrap(resp)

    async def _exchange(self, ep: Endpoint, session: UpstreamSession | None, message: dict[str, Any],
                        extra: dict[str, str], on_server_request: ServerRequestHandler | None = None,
                        limits: "_Limits | None" = None) -> tuple[dict[str, Any] | None, Mapping[str, str]]:
        limits = limits or _Limits(self._timeout, self._max)
        headers = {**ep.headers, "Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json", **extra}
        if session is not None:
            if session.session_id:
                headers["Mcp-Session-Id"] = session.session_id
            if rev.needs_version_header(session.version):
                headers["MCP-Protocol-Version"] = session.version
        try:
            async with asyncio.timeout(limits.timeout):
                # Only a request waits for an answer; a notification or our reply to the server's request is
                # acknowledged with 202 and nothing to read.
                want = message.get("id") if "method" in message else None
                fault: rpc.Fault | None = None
                async with self._wire.post(ep.url, rpc.dumps(message), headers) as resp:
                    try:
                        answer = await self._read(ep, session, resp, want, on_server_request, limits.max_bytes)
                    except rpc.Fault as exc:  # raised after the wire closed: a frozen Fault cannot cross its exit
                        fault = exc
                if fault is not None:
                    raise fault
                return answer, resp.headers
        except TimeoutError:
            raise rpc.Fault(rpc.REQUEST_TIMEOUT, f"The MCP server did not answer within {limits.timeout:g}s.",
                            data={"server": ep.id}) from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"{type(exc).__name__}: {exc}") from exc

    async def _read(self, ep: Endpoint, session: UpstreamSession | None, resp: WireResponse, want: Any,
                    on_server_request: ServerRequestHandler | None, max_bytes: int) -> dict[str, Any] | None:
        if resp.status == 404 and session is not None and session.session_id:
            raise UpstreamSessionLost(ep.id)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if want is None:  # a notification: 202 Accepted, nothing to read
            return None
        if ctype == "application/json":
            body = await _read_capped(resp, max_bytes)
            try:
                msg = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise UpstreamFailure(f"server {ep.id} answered HTTP {resp.status} with invalid JSON") from None
            if isinstance(msg, dict) and ("result" in msg or "error" in msg):
                return msg
            raise UpstreamFailure(f"server {ep.id} answered HTTP {resp.status} without a JSON-RPC response")
        if ctype == "text/event-stream":
            try:
                async for ev in events(lines(resp.chunks, max_line_bytes=max_bytes), max_event_bytes=max_bytes):
                    msg = _loads(ev.data)
                    if msg is None:
                        continue
                    if msg.get("id") == want and ("result" in msg or "error" in msg):
                        return msg
                    if "method" in msg and "id" in msg:  # a server→client request during our call
                        await self._answer(ep, session, msg, on_server_request)
            except ValueError:
                raise _too_large(max_bytes, {"server": ep.id}) from None
            raise UpstreamFailure(f"server {ep.id} closed the stream before answering")
        raise UpstreamFailure(f"server {ep.id} answered HTTP {resp.status} ({ctype or 'no content type'})")

    async def _answer(self, ep: Endpoint, session: UpstreamSession | None, msg: dict[str, Any],
                      handler: ServerRequestHandler | None) -> None:
        if handler is None:
            reply = rpc.error(msg["id"], rpc.METHOD_NOT_FOUND, "The gateway does not relay this request.")
        else:
            reply = rpc.result(msg["id"], await handler(msg))
        await self._exchange(ep, session, reply, {})

    # ---- 2024-11-05 HTTP+SSE: the session lives as long as the GET stream, so each call is a full handshake

    async def _legacy_sse(self, ep: Endpoint, method: str, params: dict[str, Any], limits: "_Limits"
                          ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(limits.timeout):
                async with self._http.stream("GET", ep.url, headers={**ep.headers, "Accept": "text/event-stream"}
                                             ) as stream:
                    if stream.status_code != 200:
                        raise UpstreamFailure(f"server {ep.id} SSE stream answered HTTP {stream.status_code}")
                    return await self._legacy_dialog(ep, stream, method, params, limits.max_bytes)
        except TimeoutError:
            raise rpc.Fault(rpc.REQUEST_TIMEOUT, f"The MCP server did not answer within {limits.timeout:g}s.",
                            data={"server": ep.id}) from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(f"{type(exc).__name__}: {exc}") from exc

    async def _legacy_dialog(self, ep: Endpoint, stream: httpx.Response, method: str,
                             params: dict[str, Any], max_bytes: int) -> dict[str, Any]:
        it = events(stream.aiter_lines(), max_event_bytes=max_bytes).__aiter__()
        first = await anext(it)
        if first.event != "endpoint":
            raise UpstreamFailure(f"server {ep.id} sent no endpoint event")
        post_url = urljoin(ep.url, first.data.strip())
        if not same_origin(post_url, ep.url):  # never let a server redirect our POSTs (nor downgrade them to http)
            raise UpstreamFailure(f"server {ep.id} named a message endpoint on another origin")
        init_id, call_id = next(_ids), next(_ids)
        # The transport is 2024-11-05's; the revision is negotiated as usual (offer our latest, take the server's
        # answer) — listings differ by revision (outputSchema, title), and pinning compares listings.
        init = {"protocolVersion": rev.LATEST_HANDSHAKE, "capabilities": {}, "clientInfo": GATEWAY_INFO}
        await self._legacy_post(ep, post_url, rpc.request(init_id, "initialize", init))
        async for ev in it:
            msg = _loads(ev.data)
            if msg is None:
                continue
            if msg.get("id") == init_id:
                _unwrap(msg)
                await self._legacy_post(ep, post_url, rpc.notification("notifications/initialized"))
                await self._legacy_post(ep, post_url, rpc.request(call_id, method, params))
            elif msg.get("id") == call_id:
                return _unwrap(msg)
        raise UpstreamFailure(f"server {ep.id} closed the SSE stream before answering")

    async def _legacy_post(self, ep: Endpoint, url: str, message: dict[str, Any]) -> None:
        resp = await self._http.post(url, content=rpc.dumps(message),
                                     headers={**ep.headers, "Content-Type": "application/json"})
        if resp.status_code >= 400:
            raise UpstreamFailure(f"server {ep.id} refused a message with HTTP {resp.status_code}")


def same_origin(url: str, base: str) -> bool:
    """Same scheme and same host:port (case-insensitive): the only place a legacy server's `endpoint` event may
    send our POSTs, which carry the outbound credential."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.netloc.lower()) == (b.scheme.lower(), b.netloc.lower())


def _loads(data: str) -> dict[str, Any] | None:
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


def _unwrap(msg: dict[str, Any] | None) -> dict[str, Any]:
    if msg is None:
        raise UpstreamFailure("no response")
    if "error" in msg:
        err = msg["error"] if isinstance(msg["error"], dict) else {}
        code = err.get("code") if isinstance(err.get("code"), int) else rpc.INTERNAL_ERROR
        raise rpc.Fault(code, str(err.get("message", "upstream error"))[:1000], data=err.get("data"))
    res = msg.get("result")
    if not isinstance(res, dict):
        raise UpstreamFailure("the server's result is not an object")
    return res


async def _read_capped(resp: WireResponse, limit: int) -> bytes:
    body = resp.buffered()  # a small answer that arrived with its head: taken at once, no generator per part
    if body is None:
        chunks, size = [], 0
        async for chunk in resp.chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int, data: dict[str, Any] | None = None) -> rpc.Fault:
    return rpc.Fault(rpc.RESULT_TOO_LARGE, f"The MCP server's answer is larger than {limit} bytes.", data=data)
