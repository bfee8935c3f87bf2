"""What the connect-time egress check costs (docs/security.md). Loopback only.

    .venv/bin/python -m bench.egress_overhead [-n 3000]

Against a minimal local HTTP server, the upstream client with the policy transport vs a plain httpx.AsyncClient:
  1. the policy decision for one new connection (cached resolution + address checks), in microseconds;
  2. one request on a pooled keep-alive connection (the hot path: no check at all once the connection is open);
  3. one request on a fresh connection every time (`connection: close`): the check's worst case.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from shared.egress import CachingResolver, EgressPolicy
from shared.upstreams.egress_transport import guarded_client

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            close = b"connection: close" in head.lower()
            writer.write(RESPONSE[:-4] + (b"\r\nconnection: close" if close else b"") + RESPONSE[-4:])
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _round(client: httpx.AsyncClient, url: str, n: int, headers: dict[str, str]) -> float:
    t = time.perf_counter()
    for _ in range(n):
        await client.get(url, headers=headers)
    return (time.perf_counter() - t) / n * 1e6


async def main(n: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def localhost_only(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    policy = EgressPolicy(allow_loopback=True, resolver=CachingResolver(localhost_only))
    url = f"http://upstream.bench:{port}/"
    await policy.resolve("upstream.bench", port)
    t = time.perf_counter()
    for _ in range(n * 10):
        await policy.resolve("upstream.bench", port)
    decision_us = (time.perf_counter() - t) / (n * 10) * 1e6
    print(f"policy decision per new connection (cached): {decision_us:.2f} us")

    plain_url = f"http://127.0.0.1:{port}/"  # the plain client resolves nothing either: a like-for-like connect
    for label, headers in (("keep-alive", {}), ("new connection", {"connection": "close"})):
        async with httpx.AsyncClient(trust_env=False) as plain, guarded_client(policy) as guarded:
            rounds: dict[str, list[float]] = {"plain": [], "guarded": []}
            for _ in range(20):  # interleaved rounds, so load drift on a shared box hits both alike
                rounds["plain"].append(await _round(plain, plain_url, n // 20, headers))
                rounds["guarded"].append(await _round(guarded, url, n // 20, headers))
        base, checked = statistics.median(rounds["plain"]), statistics.median(rounds["guarded"])
        print(f"{label:>15}: plain {base:7.1f} us  guarded {checked:7.1f} us  added {checked - base:+6.1f} us "
              f"(median of 20 rounds of {n // 20})")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000)
    asyncio.run(main(parser.parse_args().n))
