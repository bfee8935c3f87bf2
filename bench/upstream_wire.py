"""CPU per upstream models call: OpenAIHttp over httpx + httpcore (LeanConnectionPool, what the models pillar used
before; the stock httpcore pool once pool.py is gone) vs OpenAIHttp over the lean wire (`guarded_client` →
LeanHttp, used now) — non-streamed and streamed (SSE, read to the end), at several concurrencies, in interleaved
rounds (median). Loopback only; the upstream is a minimal keep-alive HTTP/1.1 server in a child process, so this
process's CPU time (time.process_time) is the client's alone.

    .venv/bin/python -m bench.upstream_wire [-n 3000] [-c 16,50] [-r 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import httpcore
import httpx
import orjson

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Backend
from shared.pillars.models.openai_http import OpenAIHttp
from shared.upstreams.egress_transport import PolicyNetworkBackend, guarded_client

try:  # the pool the models pillar used before the lean wire (removed from shared/ afterwards)
    from shared.upstreams.pool import LeanConnectionPool as BeforePool  # type: ignore[import-not-found]
    BEFORE = "httpx+LeanConnectionPool"
except ImportError:
    BeforePool = httpcore.AsyncConnectionPool
    BEFORE = "httpx+httpcore pool"

BODY = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Hello from the fake upstream!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY)) + BODY
EVENTS = [b'data: {"choices":[{"index":0,"delta":{"content":"tok%d"}}]}\n\n' % i for i in range(8)] + [b"data: [DONE]\n\n"]
STREAM = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
          + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS) + b"0\r\n\r\n")
MESSAGES = [{"role": "user", "content": "hello " * 40}]


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            writer.write(STREAM if b'"stream":true' in body else RESPONSE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200)  # the models pillar's


def before_client(policy: EgressPolicy) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(limits=LIMITS, trust_env=False)
    transport._pool = BeforePool(  # noqa: SLF001 - what egress_transport.PolicyTransport built
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=LIMITS.max_connections,
        max_keepalive_connections=LIMITS.max_keepalive_connections, keepalive_expiry=LIMITS.keepalive_expiry,
        network_backend=PolicyNetworkBackend(policy))
    return httpx.AsyncClient(transport=transport, trust_env=False)


VARIANTS = {BEFORE: before_client, "lean wire (used)": lambda p: guarded_client(p, limits=LIMITS)}


async def _load(http: OpenAIHttp, backend: Backend, n: int, c: int, stream: bool) -> float:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            body = {"messages": MESSAGES, "stream": True} if stream else {"messages": MESSAGES}
            r = await http.send(backend, "chat", body, {"accept": "application/json"}, stream=stream)
            if stream:
                try:
                    parts = [p async for p in r.aiter_bytes()]
                finally:
                    await r.aclose()
                assert b"".join(parts).endswith(b"[DONE]\n\n")
            else:
                assert r.status_code == 200 and len(r.content) == len(BODY)

    left = min(n, 4 * c)
    await asyncio.gather(*(worker() for _ in range(c)))  # warm: open the connections
    left = n
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(c)))
    return (time.process_time() - cpu) / n * 1e6


async def main(n: int, concurrency: list[int], rounds: int) -> None:
    child = subprocess.Popen([sys.executable, "-m", "bench.upstream_wire", "--serve"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        backend = Backend(id="b", kind="openai_compatible", endpoint=f"http://127.0.0.1:{port}/v1", deployment="m")
        policy = EgressPolicy(allow_loopback=True)
        creds = UpstreamCredentials(Settings(), TokenCache(lambda: None))
        clients = {name: make(policy) for name, make in VARIANTS.items()}
        https = {name: OpenAIHttp(client, creds) for name, client in clients.items()}
        print(f"µs CPU per call (median of {rounds} interleaved rounds, n={n} per round) — loopback upstream in a "
              "child process")
        print(f"{'mode':>10} {'c':>4} " + " ".join(f"{name:>26}" for name in VARIANTS) + "   lean/before")
        for stream in (False, True):
            for c in concurrency:
                samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
                for _ in range(rounds):
                    for name, http in https.items():
                        samples[name].append(await _load(http, backend, n, c, stream))
                med = [statistics.median(v) for v in samples.values()]
                cells = " ".join(f"{m:>26.0f}" for m in med)
                print(f"{'streamed' if stream else 'json':>10} {c:>4} {cells}   {med[-1] / med[0]:.2f}", flush=True)
        for client in clients.values():
            await client.aclose()
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("-c", default="16,50")
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    asyncio.run(serve() if a.serve else main(a.n, [int(x) for x in a.c.split(",")], a.r))
