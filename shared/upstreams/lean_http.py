"""`LeanHttp`: the gateway's one upstream HTTP/1.1 client — every pillar's upstream calls (models, MCP, A2A,
webhooks) go through it, directly or as the transport under an `httpx.AsyncClient` (`LeanTransport`).

Why not httpx's own transport: through httpx → httpcore pool → h11 the upstream exchange was about a third of the
gateway's CPU per models call under load and ~2.5–2.9 ms per MCP call vs ~0.4 ms here (docs/benchmarks.md). httpcore
walks every pooled connection on every request and response close; h11 validates with regexes and builds event
objects. Here: one idle stack per origin (checkout is a pop and one zero-timeout poll of that socket), the request
head and body in one write, the response parsed with bytes operations under fixed limits (http1.py).

What is kept: connections open only through `PolicyNetworkBackend` (the egress policy resolves the name and only a
checked address is connected to; TLS with the URL's host for SNI and certificate verification); header names and
values validated before anything is sent (no CR/LF injection); no cookies kept, no redirects followed, no
compression asked for; per-request connect/read/write/pool timeouts; errors are httpx's transport classes. A
connection goes back to the pool only after its response body was read to the end and closed; a body abandoned
half-way (a client that disconnected mid-stream) closes the connection instead.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import httpx
from httpcore import AsyncNetworkBackend

from ..egress import EgressPolicy
from .egress_transport import PolicyNetworkBackend
from .http1 import (Body, Conn, Head, UnsupportedEncoding, WireResponse, as_httpx, close, encode_headers,
                    read_head, request_head)

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Timeouts:
    """Per request: connect (resolve, TCP, TLS), read (each wait for response bytes), write, pool (a free slot)."""
    __slots__ = ("connect", "read", "write", "pool")

    def __init__(self, connect: float | None = None, read: float | None = None, write: float | None = None,
                 pool: float | None = None) -> None:
        self.connect, self.read, self.write, self.pool = connect, read, write, pool


NO_TIMEOUTS = Timeouts()


class LeanResponse:
    """An upstream response whose body is read lazily. `aclose()` must follow (the `LeanHttp.request` caller's
    job): it returns the connection to the pool when the body was read to its end, and closes it otherwise."""
    __slots__ = ("status", "reason", "raw_headers", "headers", "_owner", "_origin", "_conn", "_body", "_closed")

    def __init__(self, owner: LeanHttp, origin: Origin, conn: Conn, head: Head, body: Body) -> None:
        self.status, self.reason, self.raw_headers, self.headers = head.status, head.reason, head.raw, head.names
        self._owner, self._origin, self._conn, self._body = owner, origin, conn, body
        self._closed = False
        if not head.keep_alive:
            body.delimited = False  # read it, then drop the connection

    def chunks(self) -> AsyncIterator[bytes]:
        return self._body.chunks()

    def buffered(self) -> bytes | None:
        """The whole body if it already arrived with the head (then taken; else None and `chunks()` reads it)."""
        return self._body.buffered()

    async def read(self) -> bytes:
        whole = self.buffered()
        return whole if whole is not None else b"".join([part async for part in self._body.chunks()])

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        body, conn = self._body, self._conn
        try:
            if body.complete and body.delimited and not conn.buf:
                await self._owner.checkin(self._origin, conn)
            else:
                await close(conn)
        finally:
            self._owner.release()


class LeanHttp:
    def __init__(self, policy: EgressPolicy, *, max_connections: int = 1000, max_idle_per_origin: int = 64,
                 max_origins: int = 1024, idle_seconds: float = 5.0, verify: ssl.SSLContext | bool = True,
                 inner: AsyncNetworkBackend | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = PolicyNetworkBackend(policy, inner)
        self._ssl = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: OrderedDict[Origin, list[Conn]] = OrderedDict()
        self._max_idle = max_idle_per_origin
        self._max_origins = max_origins
        self._idle_seconds = idle_seconds
        self._clock = clock
        self.opened = 0  # connections opened so far (tests, benchmarks)

    async def request(self, method: str, url: str | httpx.URL, content: bytes = b"",
                      headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]] = (),
                      timeouts: Timeouts = NO_TIMEOUTS) -> LeanResponse:
        """Send one request; the response's head is read, its body is not. The caller closes the response."""
        origin, target, host = _split(url)
        # `type(...) is dict` first: `isinstance(x, Mapping)` is an ABC check (a Python-level call) on every request
        raw = encode_headers(headers) if type(headers) is dict or isinstance(headers, Mapping) else list(headers)
        head = request_head(method, target, host, raw, len(content))  # refused before a slot or a socket is taken
        if self._slots.locked():  # the pool timeout only when every slot is taken: a free one is taken at once
            try:
                async with asyncio.timeout(timeouts.pool):
                    await self._slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free upstream connection slot in time") from None
        else:
            await self._slots.acquire()
        conn: Conn | None = None
        try:
            conn = self._idle_conn(origin) or await self._checkout(origin, timeouts.connect)
            conn.timeout = timeouts.read
            with as_httpx():
                await conn.stream.write(head + content if content else head, timeouts.write)
                response_head = await read_head(conn)
            encoding = response_head.names.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity") and not _asked_for_encoding(raw):
                raise UnsupportedEncoding(f"the server sent content-encoding {encoding[:32]!r} unasked")
            return LeanResponse(self, origin, conn, response_head, Body(conn, response_head.names,
                                                                       response_head.status, method))
        except BaseException:
            if conn is not None:
                await close(conn)
            self.release()
            raise

    def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> "_Posted":
        """The MCP wire's POST (shared/pillars/tools/mcp/wire.py `Wire`): `async with` it; the response is closed
        on leaving. A small class instead of `@asynccontextmanager`: no generator per call."""
        return _Posted(self, url, content, headers)

    def release(self) -> None:
        self._slots.release()

    def _idle_conn(self, origin: Origin) -> Conn | None:
        """The most recently used idle connection to `origin` when it is fresh and quiet, taken without a coroutine
        (the common case); else None, and `_checkout` closes what expired and connects."""
        stack = self._idle.get(origin)
        if stack:
            conn = stack[-1]
            if self._clock() - conn.since <= self._idle_seconds and conn.quiet():
                return stack.pop()
        return None

    async def _checkout(self, origin: Origin, timeout: float | None) -> Conn:
        stack = self._idle.get(origin)
        now = self._clock()
        while stack:
            conn = stack.pop()
            if now - conn.since <= self._idle_seconds and conn.quiet():
                return conn
            await close(conn)  # expired, or closed by the server while idle: nothing was sent on it
        with as_httpx():
            stream = await self._backend.connect_tcp(origin[1], origin[2], timeout=timeout)
            if origin[0] == "https":
                stream = await stream.start_tls(self._ssl, server_hostname=origin[1], timeout=timeout)
        self.opened += 1
        return Conn(stream)

    async def checkin(self, origin: Origin, conn: Conn) -> None:
        conn.since = self._clock()
        conn.timeout = None
        stack = self._idle.setdefault(origin, [])
        self._idle.move_to_end(origin)
        stack.append(conn)
        if len(stack) > self._max_idle:
            await close(stack.pop(0))
        while len(self._idle) > self._max_origins:  # the least recently used origin's idle connections go
            for old in self._idle.popitem(last=False)[1]:
                await close(old)

    async def aclose(self) -> None:
        stacks, self._idle = list(self._idle.values()), OrderedDict()
        for stack in stacks:
            for conn in stack:
                await close(conn)

    async def __aenter__(self) -> LeanHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Posted:
    __slots__ = ("_owner", "_args", "_response")

    def __init__(self, owner: LeanHttp, url: str, content: bytes, headers: Mapping[str, str]) -> None:
        self._owner, self._args = owner, (url, content, headers)
        self._response: LeanResponse | None = None

    async def __aenter__(self) -> WireResponse:
        url, content, headers = self._args
        self._response = r = await self._owner.request("POST", url, content, headers)
        return WireResponse(r.status, r.headers, r.chunks(), r.buffered)

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            await self._response.aclose()


_SPLIT: dict[str, tuple[Origin, bytes, bytes]] = {}  # an upstream URL repeats on every call: parsed once (bounded)


def _split(url: str | httpx.URL) -> tuple[Origin, bytes, bytes]:
    if isinstance(url, str):
        parts = _SPLIT.get(url)
        if parts is None:
            parts = _split_now(url)
            if len(_SPLIT) >= 1024:
                _SPLIT.clear()
            _SPLIT[url] = parts
        return parts
    return _split_now(url)


def _split_now(url: str | httpx.URL) -> tuple[Origin, bytes, bytes]:
    if isinstance(url, httpx.URL):
        scheme, host, port = url.scheme, url.raw_host.decode("ascii"), url.port
        target, netloc = url.raw_path, url.netloc
    else:
        u = urlsplit(url)
        scheme, host, port = u.scheme.lower(), u.hostname or "", u.port
        target = ((u.path or "/") + ("?" + u.query if u.query else "")).encode("latin-1", "replace")
        netloc = u.netloc.rpartition("@")[2].encode("latin-1", "replace")
    if scheme not in _DEFAULT_PORTS or not host:
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {str(url)[:100]!r}")
    return (scheme, host, port or _DEFAULT_PORTS[scheme]), target, netloc


def _asked_for_encoding(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """Compression is the caller's choice: a caller that sent Accept-Encoding decodes (httpx.Response does)."""
    return any(name.lower() == b"accept-encoding" for name, _ in raw)
