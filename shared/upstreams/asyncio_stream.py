"""An httpcore network backend straight on asyncio (the loop Azure's Python worker runs), under the egress policy.

httpcore's default backend goes through anyio: every read and write enters cancel scopes, `fail_after` and
checkpoints, and the pool's "did the server close this idle connection?" check builds anyio's socket attribute
table and `select`s the socket. In the issue-13 profile that was a large share of the upstream client's CPU. Here:
- an `asyncio.Protocol` keeps reading, so a server's close of an idle keep-alive connection is already known
  (`is_readable` is a flag, no system call);
- writes are coalesced until the stream is read (or 64 KiB are pending): httpcore writes a request's head and body
  separately — one `send` each on loopback or a VNet — and the upstream reads nothing before the whole request
  anyway;
- timeouts and errors map to httpcore's own exceptions (ReadTimeout, WriteError, …), so httpx, the failover and
  the breakers see exactly what they saw before.
It connects only where it is told: `PolicyNetworkBackend` hands it an address the egress policy has checked.
"""
from __future__ import annotations

import asyncio
import ssl
import typing
from collections import deque

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

FLUSH_AT = 65_536  # pending request bytes sent without waiting for the stream to be read
_PAUSE_AT, _RESUME_AT = 1_048_576, 262_144  # response bytes buffered before reading pauses (flow control)


class _Reader(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _PAUSE_AT and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: an HTTP/1.1 client never writes after the server's FIN

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self.writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def arm(self, timeout: float | None) -> tuple[asyncio.Future[None], asyncio.TimerHandle | None]:
        """A future done when data, EOF or an error arrives, failed with TimeoutError after `timeout` s by its
        timer (one loop timer, cancelled by `disarm`) instead of an `asyncio.timeout` scope cancelling the task:
        the same outcome for the one read it bounds, at about half the cost on every upstream read. The reader
        awaits the future itself (no coroutine level of ours in the call's await chain), then calls `disarm`."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        return waiter, None if timeout is None else loop.call_later(timeout, _expire, waiter)

    def disarm(self, timer: asyncio.TimerHandle | None) -> None:
        self._waiter = None
        if timer is not None:
            timer.cancel()

    async def drained(self, timeout: float | None) -> None:
        self._drained = drained = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await drained
        finally:
            self._drained = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AsyncioStream(AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, reader: _Reader) -> None:
        self._transport, self._reader = transport, reader
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._flush(timeout)
        r = self._reader
        if not r.chunks:
            if not r.eof:
                waiter, timer = r.arm(timeout)
                try:
                    await waiter
                except TimeoutError:
                    raise httpcore.ReadTimeout(f"No data from the upstream within {timeout} s.") from None
                finally:
                    r.disarm(timer)
            if not r.chunks:
                if r.error is not None:
                    raise httpcore.ReadError(f"{type(r.error).__name__}: {r.error}")
                return b""  # the server closed the connection
        chunk = r.chunks.popleft()
        if len(chunk) > max_bytes:
            r.chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        r.buffered -= len(chunk)
        if r.reading_paused and r.buffered < _RESUME_AT:
            r.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        if self._pending_size >= FLUSH_AT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        r = self._reader
        if self._transport.is_closing() or r.error is not None:
            raise httpcore.WriteError("The upstream connection is closed.")
        self._transport.write(data)
        if r.writing_paused:
            try:
                await r.drained(timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout(f"The upstream did not take the request within {timeout} s.") from None
            if r.error is not None:
                raise httpcore.WriteError(f"{type(r.error).__name__}: {r.error}")

    async def aclose(self) -> None:
        self._pending.clear()
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncNetworkStream:
        if self._pending:
            await self._flush(timeout)
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self._transport, self._reader, ssl_context,
                                             server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake with {server_hostname} timed out.") from None
        except (ssl.SSLError, OSError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(f"TLS with {server_hostname} failed: {exc}") from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError(f"TLS with {server_hostname}: connection closed.")
        self._reader.transport = transport  # type: ignore[assignment]
        return AsyncioStream(transport, self._reader)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            # An idle HTTP/1.1 connection with bytes or an EOF pending was closed (or broken) by the server.
            return bool(self._reader.chunks) or self._reader.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, reader = await loop.create_connection(
                    _Reader, host, port, local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"Connecting to {host}:{port} timed out.") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"Connecting to {host}:{port} failed: {exc}") from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(typing.cast(asyncio.Transport, transport), reader)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None) -> AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are not an upstream destination.")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
