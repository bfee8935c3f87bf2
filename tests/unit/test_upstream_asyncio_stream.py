"""The asyncio-native upstream streams (shared/upstreams/asyncio_stream.py) through the real upstream client
(`guarded_client`) against loopback servers: one write per request, flow control both ways, a server's close of
an idle connection noticed without a system call, and httpx's own error types for timeouts and refusals."""
from __future__ import annotations

import asyncio
import selectors
import socket

import httpx
import pytest

from shared.egress import EgressPolicy
from shared.upstreams.egress_transport import guarded_client

POLICY = EgressPolicy(allow_loopback=True)


class Upstream:
    """Reads a request (head + content-length body), answers `answer(body)`; records what it saw."""

    def __init__(self, answer: bytes | None = b"ok", silent: bool = False) -> None:
        self.answer, self.silent = answer, silent
        self.bodies: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.bodies.append(await reader.readexactly(length))
                if self.silent:
                    await asyncio.sleep(3600)
                assert self.answer is not None
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(self.answer) + self.answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "Upstream":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


async def test_a_request_goes_out_in_one_write_and_reuses_its_connection(monkeypatch: pytest.MonkeyPatch):
    loop_transport = type(await _probe_transport())
    writes: list[bytes] = []
    original = loop_transport.write

    def counting(self, data):  # type: ignore[no-untyped-def]
        writes.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(loop_transport, "write", counting)
    async with Upstream() as up, guarded_client(POLICY) as client:
        for i in range(3):
            r = await client.post(up.url, content=b'{"n":%d}' % i, headers={"content-type": "application/json"})
            assert r.status_code == 200 and r.content == b"ok"
    sent = [w for w in writes if not w.startswith(b"HTTP/1.1")]  # the client's, not the upstream's answers
    assert len(sent) == 3 and all(w.startswith(b"POST ") for w in sent)  # head+body in one write (httpcore: two)
    assert up.bodies == [b'{"n":0}', b'{"n":1}', b'{"n":2}'] and up.connections == 1


async def test_large_bodies_flow_both_ways():
    big = bytes(range(256)) * 12_000  # ~3 MB: past the write-coalescing and the read-pause thresholds
    async with Upstream(answer=big) as up, guarded_client(POLICY) as client:
        r = await client.post(up.url, content=big)
        assert r.status_code == 200 and r.content == big and up.bodies == [big]


async def test_an_idle_connection_the_server_closed_is_replaced_not_reused():
    async with Upstream() as up, guarded_client(POLICY) as client:
        assert (await client.post(up.url, content=b"{}")).status_code == 200
        up.writers[0].close()  # the upstream's keep-alive timeout
        await asyncio.sleep(0.05)
        assert (await client.post(up.url, content=b"{}")).status_code == 200
        assert up.connections == 2


async def test_timeouts_and_refusals_are_httpx_errors():
    async with Upstream(silent=True) as up, guarded_client(POLICY) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(up.url, content=b"{}", timeout=httpx.Timeout(5, read=0.05))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    async with guarded_client(POLICY) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/", content=b"{}")


async def test_a_server_that_closes_without_answering_is_a_protocol_error():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        async with guarded_client(POLICY) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
    finally:
        server.close()


async def _probe_transport() -> asyncio.Transport:
    """A plain loopback TCP transport, to learn the loop's concrete transport class."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    transport, _ = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, "127.0.0.1", server.sockets[0].getsockname()[1])
    transport.close()
    server.close()
    assert selectors  # (the selector loop's socket transport is what the upstream client uses)
    return transport  # type: ignore[return-value]
