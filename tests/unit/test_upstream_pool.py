"""The upstream connection pool (shared/upstreams/pool.py) against a real loopback HTTP/1.1 server: per-call
bookkeeping independent of the pool's size, stale connections never reused, limits kept, sweeps on the clock."""
from __future__ import annotations

import asyncio

import httpcore
import pytest

from shared.upstreams.pool import LeanConnectionPool

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Server:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.connections, self.open, self.peak = delay, 0, 0, 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for w in self.writers:
            w.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _get(pool: httpcore.AsyncConnectionPool, url: str) -> bytes:
    response = await pool.request("GET", url)
    assert response.status == 200
    return response.content


async def test_a_call_checks_one_connection_not_the_whole_pool(monkeypatch: pytest.MonkeyPatch):
    clock = Clock()
    async with Server(delay=0.02) as server, LeanConnectionPool(max_connections=100, clock=clock) as pool:
        await asyncio.gather(*(_get(pool, server.url) for _ in range(40)))
        assert len(pool.connections) == 40 and server.connections == 40
        checked: list[object] = []
        original = httpcore.AsyncHTTPConnection.has_expired

        def spy(self: httpcore.AsyncHTTPConnection) -> bool:
            checked.append(self)
            return original(self)

        monkeypatch.setattr(httpcore.AsyncHTTPConnection, "has_expired", spy)
        for _ in range(10):
            assert await _get(pool, server.url) == b"ok"
        # httpcore's own pool: 40 checks per assignment, two assignments per call (800); ours: the one reused
        assert len(checked) == 10
        assert server.connections == 40  # keep-alive reuse, no churn


async def test_a_connection_the_server_closed_while_idle_is_never_reused():
    async with Server() as server, LeanConnectionPool(max_connections=10, clock=Clock()) as pool:
        await _get(pool, server.url)
        server.writers[0].close()  # the upstream drops the idle keep-alive connection
        await asyncio.sleep(0.05)
        assert await _get(pool, server.url) == b"ok"
        assert server.connections == 2


async def test_max_connections_is_kept_and_queued_calls_all_complete():
    async with Server(delay=0.01) as server, LeanConnectionPool(max_connections=3, clock=Clock()) as pool:
        results = await asyncio.gather(*(_get(pool, server.url) for _ in range(20)))
        assert results == [b"ok"] * 20
        assert server.peak <= 3 and len(pool.connections) <= 3


async def test_the_sweep_closes_expired_and_surplus_idle_connections_on_the_clock():
    clock = Clock()
    async with Server(delay=0.02) as server, \
            LeanConnectionPool(max_connections=50, max_keepalive_connections=4, keepalive_expiry=60, clock=clock,
                               sweep_seconds=1.0) as pool:
        await _get(pool, server.url)  # first sweep done at t=100
        await asyncio.gather(*(_get(pool, server.url) for _ in range(10)))
        assert len(pool.connections) == 10  # between sweeps the surplus stays (bounded by max_connections)
        clock.now += 1.5
        await _get(pool, server.url)
        # idle connections are counted as idle (httpcore counted every connection): exactly the allowance is kept
        assert len(pool.connections) == 4
        await asyncio.sleep(0.05)
        assert server.open == 4
