"""CPU per upstream call of the shared upstream HTTP client (shared/upstreams), httpx over the stock httpcore pool
vs httpx over the lean wire (what `guarded_client` builds now: LeanHttp as the transport), at several
concurrencies, in one run (issue 13: the stock pool's per-request work grows with the number of pooled
connections — the "collapse" under c=50). The lean pool subclass that sat between them (pool.py) is gone; its
numbers are in docs/benchmarks.md. bench/upstream_wire.py measures the models call's own path (OpenAIHttp). Loopback only; the upstream is a minimal keep-alive HTTP/1.1 server in a
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


def _client(policy: EgressPolicy, limits: httpx.Limits, backend: httpcore.AsyncNetworkBackend | None
            ) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001 - bench only: the pool over the egress backend
        ssl_context=httpx.create_ssl_context(verify=True, trust_env=False),
        max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, network_backend=PolicyNetworkBackend(policy, backend))
    return httpx.AsyncClient(transport=transport, trust_env=False)


VARIANTS = {  # before issue 13 → what guarded_client builds now
    "stock pool+anyio": lambda p, lim: _client(p, lim, httpcore.AnyIOBackend()),
    "ours (lean wire)": lambda p, lim: guarded_client(p, limits=lim),
}


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
        print(f"µs CPU per call (calls/s) — n={n}, loopback upstream in a child process")
        print(f"{'c':>4} " + " ".join(f"{name:>22}" for name in VARIANTS) + "  ours/stock")
        for c in concurrency:
            row = []
            for make in VARIANTS.values():
                async with make(policy, limits) as client:
                    row.append(await _load(client, url, n, c))
            cells = " ".join(f"{f'{cpu:.0f} ({rps:.0f}/s)':>22}" for cpu, rps in row)
            print(f"{c:>4} {cells}  {row[-1][0] / row[0][0]:.2f}", flush=True)
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
