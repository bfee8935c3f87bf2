"""`LeanWire`: the MCP upstream POST as a lean HTTP/1.1 exchange over egress-checked connections.

Why: through httpx/httpcore the upstream exchange cost ~2.5–2.9 ms of CPU per call on the shared 2-core box (an
httpcore pool with head and body coalesced into one write still ~2.5 ms), this wire ~0.4 ms (bench/mcp_wire.py). httpcore's cost
is per call and grows with the pool: every request walks every pooled connection (`is_idle`, `has_expired`, a
readability poll per idle socket), then h11 validates each header with regexes and builds event objects. Here:
one idle stack per origin (checkout is a pop and one zero-timeout poll of that socket), the request head and
body in one write, and a status line, headers and body framing (Content-Length, chunked, or until close) parsed
with bytes operations under fixed limits.

What is kept: connections open through `PolicyNetworkBackend` (`shared/upstreams/egress_transport.py`: the name
is resolved by the egress policy and only a checked address is connected to; TLS with the URL's host for SNI and
verification), errors are httpx's transport classes (the pipeline's failover treats them as "unreachable"), header
names/values are validated before sending (no CR/LF injection from a resource URI or a registry value), no
cookies are stored and no redirects are followed, no compression is asked for.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit

import httpx
from httpcore import AsyncNetworkStream

from ....egress import EgressPolicy
from ....upstreams.egress_transport import PolicyNetworkBackend
from .wire import UnsupportedEncoding, WireResponse, as_httpx

log = logging.getLogger(__name__)
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MAX_HEAD = 64 * 1024
_MAX_HEADERS = 200
_READ = 65536


class _Conn:
    __slots__ = ("stream", "sock", "buf", "since")

    def __init__(self, stream: AsyncNetworkStream) -> None:
        self.stream = stream
        self.sock = stream.get_extra_info("socket")
        self.buf = b""
        self.since = 0.0

    def quiet(self) -> bool:
        """An idle connection is reusable only while its socket has nothing to read (no close, no stray bytes)."""
        if self.sock is None:
            return False
        try:
            poller = select.poll()  # not select(): descriptors above 1024 are common on a busy instance
            poller.register(self.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    async def fill(self) -> None:
        data = await self.stream.read(_READ)
        if not data:
            raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
        self.buf += data


class LeanWire:
    def __init__(self, policy: EgressPolicy, *, max_connections: int = 1000, max_idle_per_origin: int = 64,
                 max_origins: int = 1024, idle_seconds: float = 5.0, verify: ssl.SSLContext | bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = PolicyNetworkBackend(policy)
        self._ssl = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._ssl.set_alpn_protocols(["http/1.1"])
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: OrderedDict[tuple[str, str, int], list[_Conn]] = OrderedDict()
        self._max_idle = max_idle_per_origin
        self._max_origins = max_origins
        self._idle_seconds = idle_seconds
        self._clock = clock
        self.opened = 0  # connections opened so far (tests, benchmarks)

    @contextlib.asynccontextmanager
    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> AsyncIterator[WireResponse]:
        u = urlsplit(url)
        scheme, host = u.scheme.lower(), u.hostname
        if scheme not in ("http", "https") or not host:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url[:100]!r}")
        port = u.port or (443 if scheme == "https" else 80)
        origin = (scheme, host, port)
        head = _head(u.path or "/", u.query, u.netloc.rpartition("@")[2], headers, len(content))
        async with self._slots:
            conn = await self._checkout(origin)
            reuse = False
            try:
                with as_httpx():
                    await conn.stream.write(head + content)
                    status, names, keep = await _read_head(conn)
                encoding = names.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise UnsupportedEncoding(f"the server sent content-encoding {encoding[:32]!r} unasked")
                body = _Body(conn, names, status)
                yield WireResponse(status, names, body.chunks())
                reuse = keep and body.complete and body.delimited and not conn.buf
            finally:
                if reuse:
                    await self._checkin(origin, conn)
                else:
                    await _close(conn)

    async def _checkout(self, origin: tuple[str, str, int]) -> _Conn:
        stack = self._idle.get(origin)
        now = self._clock()
        while stack:
            conn = stack.pop()
            if now - conn.since <= self._idle_seconds and conn.quiet():
                return conn
            await _close(conn)
        with as_httpx():
            stream = await self._backend.connect_tcp(origin[1], origin[2])
            if origin[0] == "https":
                stream = await stream.start_tls(self._ssl, server_hostname=origin[1])
        self.opened += 1
        return _Conn(stream)

    async def _checkin(self, origin: tuple[str, str, int], conn: _Conn) -> None:
        conn.since = self._clock()
        stack = self._idle.setdefault(origin, [])
        self._idle.move_to_end(origin)
        stack.append(conn)
        if len(stack) > self._max_idle:
            await _close(stack.pop(0))
        while len(self._idle) > self._max_origins:
            _, old = self._idle.popitem(last=False)
            for c in old:
                await _close(c)

    async def aclose(self) -> None:
        stacks, self._idle = list(self._idle.values()), OrderedDict()
        for stack in stacks:
            for conn in stack:
                await _close(conn)


def _head(path: str, query: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    target = path + ("?" + query if query else "")
    if any(c in target for c in "\r\n \0"):
        raise httpx.LocalProtocolError("invalid request target")
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    for name, value in headers.items():
        low = name.lower()
        if low in ("host", "content-length", "transfer-encoding", "connection"):
            continue  # framing is ours
        if not _TOKEN.match(name.encode("latin-1", "replace")) or any(c in value for c in "\r\n\0"):
            raise httpx.LocalProtocolError(f"invalid header {name[:64]!r}")
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("a header is not latin-1") from None


async def _read_head(conn: _Conn) -> tuple[int, dict[str, str], bool]:
    while True:  # 1xx interim answers are skipped
        end = conn.buf.find(b"\r\n\r\n")
        while end < 0:
            if len(conn.buf) > _MAX_HEAD:
                raise httpx.RemoteProtocolError("the server's response head is too large")
            data = await conn.stream.read(_READ)
            if not data:
                raise httpx.RemoteProtocolError("the server closed the connection without a response")
            conn.buf += data
            end = conn.buf.find(b"\r\n\r\n")
        head, conn.buf = conn.buf[:end], conn.buf[end + 4:]
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit() or len(lines) > _MAX_HEADERS:
            raise httpx.RemoteProtocolError("malformed response head")
        names: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise httpx.RemoteProtocolError("malformed response header")
            key, val = name.decode("latin-1").lower(), value.strip().decode("latin-1")
            names[key] = f"{names[key]}, {val}" if key in names else val
        status = int(code)
        if 100 <= status < 200:
            continue
        conn_header = names.get("connection", "").lower()
        keep = "close" not in conn_header and (version == b"HTTP/1.1" or "keep-alive" in conn_header)
        return status, names, keep


class _Body:
    def __init__(self, conn: _Conn, names: Mapping[str, str], status: int) -> None:
        self._conn = conn
        self.complete = False
        self.delimited = True  # False: the body ends with the connection, which is then not reusable
        te = names.get("transfer-encoding", "").lower()
        length = names.get("content-length")
        self._length: int | None = None
        if "chunked" in te:
            self._mode = "chunked"
        elif te:
            raise httpx.RemoteProtocolError(f"unsupported transfer-encoding {te[:32]!r}")
        elif length is not None:
            values = {v.strip() for v in length.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise httpx.RemoteProtocolError("invalid content-length")
            self._mode, self._length = "length", int(values.pop())
        elif status in (204, 304):
            self._mode, self._length = "length", 0
        else:
            self._mode, self.delimited = "close", False
        self.complete = self._length == 0  # a 202 to a notification: nothing to read, the connection is reusable

    async def chunks(self) -> AsyncIterator[bytes]:
        with as_httpx():
            if self._mode == "length":
                async for part in self._exactly(self._length or 0):
                    yield part
            elif self._mode == "chunked":
                async for part in self._chunked():
                    yield part
            else:
                async for part in self._until_close():
                    yield part
        self.complete = True

    async def _exactly(self, n: int) -> AsyncIterator[bytes]:
        c = self._conn
        while n > 0:
            if not c.buf:
                await c.fill()
            part, c.buf = c.buf[:n], c.buf[n:]
            n -= len(part)
            yield part

    async def _line(self) -> bytes:
        c = self._conn
        while (i := c.buf.find(b"\r\n")) < 0:
            if len(c.buf) > 4096:
                raise httpx.RemoteProtocolError("malformed chunked body")
            await c.fill()
        line, c.buf = c.buf[:i], c.buf[i + 2:]
        return line

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            size_text = (await self._line()).split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or any(ch not in b"0123456789abcdefABCDEF" for ch in size_text):
                raise httpx.RemoteProtocolError("malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                for _ in range(_MAX_HEADERS):  # trailers, up to the empty line
                    if not await self._line():
                        return
                raise httpx.RemoteProtocolError("too many trailers")
            async for part in self._exactly(size):
                yield part
            if await self._line():
                raise httpx.RemoteProtocolError("malformed chunk end")

    async def _until_close(self) -> AsyncIterator[bytes]:
        c = self._conn
        if c.buf:
            part, c.buf = c.buf, b""
            yield part
        while data := await c.stream.read(_READ):
            yield data


async def _close(conn: _Conn) -> None:
    try:
        await conn.stream.aclose()
    except Exception as exc:  # noqa: BLE001 - a broken socket may fail to close again; nothing left to release
        log.debug("closing an upstream connection failed: %s", exc)
