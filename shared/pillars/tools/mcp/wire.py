"""The HTTP exchange under every streamable-HTTP MCP call: one POST, its status, headers and body chunks.

Why not `httpx.AsyncClient` on the hot path: a py-spy profile of `tools/call` through a toolbox (docs/benchmarks.md)
put about half of the gateway's CPU per call in the upstream client — httpx's request/response models, header
merging, cookie jar, auth and redirect layers around httpcore — while the MCP exchange needs none of them (no
redirects are followed, no cookies may be kept: a cookie one caller's call received must never ride on another
caller's). `PoolWire` talks to an httpcore connection pool directly: keep-alive connections per origin, every new
one opened through the egress policy's network backend (`shared/upstreams/egress_transport.py`, the address actually
connected to is checked), and each request's head and body leave in one socket write (`CoalescingBackend`) instead
of two. httpcore's errors are re-raised as their httpx twins, so the pipeline's failover sees the same
`httpx.TransportError` classes as before. `HttpxWire` keeps an `httpx.AsyncClient` usable (tests with
`httpx.MockTransport`, callers that pass their own client).
"""
from __future__ import annotations

import codecs
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

from ....egress import EgressPolicy
from ....upstreams.egress_transport import PolicyNetworkBackend


@dataclass
class WireResponse:
    status: int
    headers: Mapping[str, str]      # lower-case names
    chunks: AsyncIterator[bytes]    # the body as it arrives (content-encoding already undone or refused)


class Wire(Protocol):
    def post(self, url: str, content: bytes, headers: Mapping[str, str]
             ) -> contextlib.AbstractAsyncContextManager[WireResponse]: ...


class UnsupportedEncoding(httpx.DecodingError):
    """The server compressed its answer although the gateway asked for none (no Accept-Encoding)."""


class HttpxWire:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @contextlib.asynccontextmanager
    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> AsyncIterator[WireResponse]:
        req = self._client.build_request("POST", url, content=content, headers=dict(headers))
        resp = await self._client.send(req, stream=True)
        try:
            yield WireResponse(resp.status_code, resp.headers, resp.aiter_bytes())
        finally:
            await resp.aclose()


class PoolWire:
    """httpcore pool, egress-checked connections, coalesced writes. `aclose` with the app."""

    def __init__(self, policy: EgressPolicy, *, max_connections: int, max_keepalive: int,
                 keepalive_expiry: float = 5.0, verify: ssl.SSLContext | bool = True,
                 inner: AsyncNetworkBackend | None = None) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=max_connections, max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry,
            network_backend=PolicyNetworkBackend(policy, CoalescingBackend(inner or httpcore.AnyIOBackend())))

    @property
    def connections(self) -> int:
        return len(self._pool.connections)

    @contextlib.asynccontextmanager
    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> AsyncIterator[WireResponse]:
        with _as_httpx():
            async with self._pool.stream("POST", url, headers=[(k.encode(), v.encode()) for k, v in headers.items()],
                                         content=content) as resp:
                names = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in resp.headers}
                encoding = names.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise UnsupportedEncoding(f"the server sent content-encoding {encoding[:32]!r} unasked")
                yield WireResponse(resp.status, names, _mapped(resp.aiter_stream()))

    async def aclose(self) -> None:
        await self._pool.aclose()


@contextlib.contextmanager
def _as_httpx() -> Any:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise getattr(httpx, type(exc).__name__, httpx.TimeoutException)(str(exc)) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpcore.ProxyError,
            httpcore.PoolTimeout) as exc:
        raise getattr(httpx, type(exc).__name__, httpx.TransportError)(str(exc)) from exc


async def _mapped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    with _as_httpx():
        async for chunk in chunks:
            yield chunk


async def lines(chunks: AsyncIterator[bytes], *, max_line_bytes: int) -> AsyncIterator[str]:
    """SSE lines (CRLF, LF or CR ends a line) from body chunks; a line longer than the cap is a ValueError, so a
    server cannot make the gateway buffer an endless line."""
    buf = ""
    pending_cr = False
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character split across chunks stays whole
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if pending_cr and text.startswith("\n"):
            text = text[1:]
        pending_cr = text.endswith("\r")
        buf += text
        parts = buf.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buf = parts.pop()
        if len(buf) > max_line_bytes:
            raise ValueError(f"SSE line longer than {max_line_bytes} bytes")
        for line in parts:
            yield line
    buf += decoder.decode(b"", final=True)
    if buf:
        yield buf


class CoalescingStream(AsyncNetworkStream):
    """Holds what httpcore writes until it reads: an HTTP/1.1 client always reads after sending a request, so the
    request head and body leave in one `send` (one syscall, one segment on loopback) instead of two."""

    def __init__(self, inner: AsyncNetworkStream) -> None:
        self._inner = inner
        self._out: list[bytes] = []

    async def _flush(self, timeout: float | None) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            await self._inner.write(data, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._out.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._inner.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._out.clear()
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncNetworkStream:
        await self._flush(timeout)
        return CoalescingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class CoalescingBackend(AsyncNetworkBackend):
    def __init__(self, inner: AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        return CoalescingStream(await self._inner.connect_tcp(host, port, timeout=timeout,
                                                              local_address=local_address,
                                                              socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        return CoalescingStream(await self._inner.connect_unix_socket(path, timeout=timeout,
                                                                      socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
