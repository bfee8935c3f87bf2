"""CPU per upstream call of the shared upstream HTTP client (shared/upstreams), stock httpcore pool vs ours, at
several concurrencies, in one run (issue 13: the stock pool's per-request work grows with the number of pooled
connections — the "collapse" under c=50). Loopback only; the upstream is a minimal keep-alive HTTP/1.1 server in a
child process, so this process's CPU time (time.process_time) is the client's alone.

    .venv/bin/python -m bench.upstream_pool [-n 4000] [-c 1,10,50,100]
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import httpcore
import httpx
import orjson

from shared.egress import EgressPolicy
from shared.upstreams.egress_transport import PolicyNetworkBackend, guarded_client

BODY = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Hello from the fake upstream!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)) + BODY
REQUEST = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello " * 40}], "max_tokens": 20})


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def stock_client(policy: EgressPolicy, limits: httpx.Limits) -> httpx.AsyncClient:
    """The client as it was before issue 13: httpx's transport over httpcore's own AsyncConnectionPool."""
    client = guarded_client(policy, limits=limits)
    transport = client._transport  # noqa: SLF001 - bench only: swap the pool for the stock one
    transport._pool = httpcore.AsyncConnectionPool(  # type: ignore[attr-defined]
        ssl_context=httpx.create_ssl_context(verify=True, trust_env=False),
        max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, network_backend=PolicyNetworkBackend(policy))
    return client


async def _load(client: httpx.AsyncClient, url: str, n: int, c: int) -> tuple[float, float]:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            r = await client.post(url, content=REQUEST, headers={"content-type": "application/json"})
            assert r.status_code == 200 and len(r.content) == len(BODY)

    await asyncio.gather(*(worker() for _ in range(c)))  # warm: open the connections
    left = n
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    return (time.process_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def main(n: int, concurrency: list[int]) -> None:
    child = subprocess.Popen([sys.executable, "-m", "bench.upstream_pool", "--serve"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        policy = EgressPolicy(allow_loopback=True)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)  # the models pillar's
        print(f"{'c':>4} {'stock µs CPU/call':>18} {'ours µs CPU/call':>17} {'ratio':>6} "
              f"{'stock calls/s':>14} {'ours calls/s':>13}")
        for c in concurrency:
            row = []
            for make in (stock_client, lambda p, lim: guarded_client(p, limits=lim)):
                async with make(policy, limits) as client:
                    row.append(await _load(client, url, n, c))
            (s_cpu, s_rps), (o_cpu, o_rps) = row
            print(f"{c:>4} {s_cpu:>18.0f} {o_cpu:>17.0f} {o_cpu / s_cpu:>6.2f} {s_rps:>14.0f} {o_rps:>13.0f}")
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=4000)
    ap.add_argument("-c", default="1,10,50,100")
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    asyncio.run(serve() if a.serve else main(a.n, [int(x) for x in a.c.split(",")]))
