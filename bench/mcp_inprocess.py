"""Benchmark (not a test): the gateway's own CPU per toolbox `tools/call`, in process, against a real MCP server.

The MCP data plane is assembled the way the app assembles it (`Services` → tools pillar → plane: registry-backed
directory, outbound auth, sealed sessions, the generic pipeline with the guardrail step, quota admission, the
request log) over an in-memory document store, memory quota counters and a memory request-log sink (so Storage
round trips are not what is measured), and `bench/fast_mcp_upstream.py` in its own process as the upstream.

Each round sends N calls through `McpTransport.post` (what the `/mcp/{toolbox}` function calls) — a 2026-07-28
per-request envelope and a 2025-11-25 client on a sealed session, alternately — and, interleaved, N direct calls of
the same tool with the same MCP client (`McpUpstream.request`, the wire alone). CPU = this process's
`time.process_time()` per call; the upstream's CPU is not counted. Gateway-own = through − direct.

    .venv/bin/python -m bench.mcp_inprocess [--calls 1500] [--rounds 5] [--concurrency 8] [--profile OUT.prof]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

# --root TREE: import the gateway from another checkout (a before/after A/B: `bench.mcp_ab` alternates the two)
ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv else \
    Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev.emulators import free_port  # noqa: E402
from shared.auth.principal import Principal  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.domain.base import Pillar  # noqa: E402
from shared.domain.projects import PillarState, Project  # noqa: E402
from shared.domain.quotas import Quota, QuotaLimits  # noqa: E402
from shared.pillars.tools.domain import (  # noqa: E402
    McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox, ToolboxOwner, ToolboxSpec)
from shared.pillars.tools.mcp.session import UpstreamSession  # noqa: E402
from shared.pillars.tools.mcp.upstream import Endpoint  # noqa: E402
from shared.quotas.enforcer import QuotaEnforcer  # noqa: E402
from shared.quotas.store import MemoryCounterStore  # noqa: E402
from shared.services import Services  # noqa: E402
from shared.storage.memory import MemoryDocumentStore  # noqa: E402
from shared.storage.repository import Repository  # noqa: E402
from shared.usage.log import MemoryUsageSink, UsageLog  # noqa: E402
from tests.support.mcp_servers import _wait_port  # noqa: E402

P, BOX, NS = "bench", "dev", "fast"
TOOL = f"{NS}__shout"
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
KEY = Principal(kind="virtual_key", subject="k1", project_id=P, key_id="k1", key_prefix="sk-gw-k1")
MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": {}}


async def seed(store: MemoryDocumentStore, url: str) -> None:
    await Repository(store, Project).create(Project(id=P, name=P, pillars={p: PillarState(enabled=True)
                                                                          for p in Pillar}))
    await Repository(store, Quota).create(Quota(id="key.k1", project_id=P, scope="key", target="k1",
                                                limits=QuotaLimits(requests_per_minute=10**9)))
    await Repository(store, McpServer).create(McpServer(
        id=NS, project_id=P, spec=McpServerSpec(id=NS, url=url, namespace=NS), lifecycle="published",
        approval="approved"))
    await Repository(store, ToolDefinition).create(ToolDefinition(
        id=TOOL, project_id=P, server_id=NS, original_name="shout", name=TOOL,
        definition=PinnedDefinition(name="shout", input_schema=SCHEMA), pinned_hash="sha256:" + "1" * 64,
        status="approved"))
    await Repository(store, Toolbox).create(Toolbox(id=BOX, project_id=P, spec=ToolboxSpec(id=BOX, tools=[TOOL]),
                                                    owner=ToolboxOwner()))


def build(store: MemoryDocumentStore) -> tuple[Services, MemoryUsageSink]:
    settings = Settings(EGRESS_ALLOW_LOOPBACK=True, MCP_SESSION_SECRETS="bench-secret")
    services = Services(settings, store=store)
    sink = MemoryUsageSink()
    # memory counters and request-log sink: the gateway's own work is measured, not Azure Tables round trips
    services.__dict__["enforcer"] = QuotaEnforcer(MemoryCounterStore())
    services.__dict__["usage_log"] = UsageLog(sink, flush_seconds=0.2, max_buffer=100_000)
    return services, sink


def modern_body(i: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": TOOL, "arguments": {"text": "hi"}, "_meta": MODERN_META}})


def legacy_body(i: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": TOOL, "arguments": {"text": "hi"}}})


async def open_session(transport) -> dict[str, str]:
    init = orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}})
    reply = await transport.post(KEY, BOX, {"accept": "application/json, text/event-stream"}, init, "init", 0.0)
    assert reply.status == 200, reply.body
    return {"accept": "application/json, text/event-stream", "content-type": "application/json",
            "mcp-session-id": reply.headers["Mcp-Session-Id"], "mcp-protocol-version": "2025-11-25"}


MODERN_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                  "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": TOOL}


async def through(transport, session_headers: dict[str, str], calls: int, workers: int) -> float:
    left = iter(range(calls))

    async def worker() -> None:
        for i in left:
            if i % 2:
                reply = await transport.post(KEY, BOX, MODERN_HEADERS, modern_body(i), f"r{i}", time.perf_counter())
            else:
                reply = await transport.post(KEY, BOX, session_headers, legacy_body(i), f"r{i}", time.perf_counter())
            assert reply.status == 200 and b'"HI"' in reply.body, reply.body

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return (time.process_time() - t0) / calls * 1e6


async def direct(upstream, ep: Endpoint, calls: int, workers: int) -> float:
    left = iter(range(calls))
    session = UpstreamSession(version="2026-07-28")

    async def worker() -> None:
        for _ in left:
            res = await upstream.request(ep, session, "tools/call", {"name": "shout", "arguments": {"text": "hi"}})
            assert res["content"][0]["text"] == "HI"

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return (time.process_time() - t0) / calls * 1e6


async def open_loop(send, rate: float, seconds: float) -> list[float]:
    """Evenly spaced sends at `rate`/s for `seconds` (not waiting for answers): each call's latency in ms."""
    lat: list[float] = []
    tasks = []

    async def one(i: int) -> None:
        t = time.perf_counter()
        await send(i)
        lat.append((time.perf_counter() - t) * 1000)

    start, n = time.perf_counter(), int(rate * seconds)
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return lat


class StallProbe:
    """Every event-loop step (a task step or callback) longer than `limit_ms`, with its wall time, the CPU this
    thread spent in it (CPU ≪ wall: the process was descheduled or blocked, not working) and the innermost frames
    of the task — where the time went, below what bench/gcprobe's six outer frames show."""

    def __init__(self, limit_ms: float) -> None:
        import asyncio.events

        self.rows: list[tuple[float, float, str]] = []
        self.gc: list[tuple[int, float]] = []
        orig, rows, limit = asyncio.events.Handle._run, self.rows, limit_ms / 1000

        def timed(handle) -> None:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return orig(handle)
            finally:
                wall = time.perf_counter() - t
                if wall > limit:
                    rows.append((wall * 1000, (time.thread_time() - c) * 1000, _where(handle)))

        asyncio.events.Handle._run = timed
        import gc

        started = [0.0]

        def collected(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                self.gc.append((info["generation"], (time.perf_counter() - started[0]) * 1000))

        gc.callbacks.append(collected)

    def report(self) -> None:
        from collections import defaultdict

        by: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for wall, cpu, where in self.rows:
            by[where].append((wall, cpu))
        print(f"loop steps > limit: {len(self.rows)}; gc pauses > 1 ms by generation: "
              f"{[(g, round(ms, 1)) for g, ms in self.gc if ms > 1]}")
        for where, v in sorted(by.items(), key=lambda kv: -len(kv[1]))[:12]:
            walls, cpus = sorted(w for w, _ in v), sorted(c for _, c in v)
            print(f"  {len(v):4d}x wall median {walls[len(v) // 2]:.1f} max {walls[-1]:.1f} ms, cpu median "
                  f"{cpus[len(v) // 2]:.1f} max {cpus[-1]:.1f} ms: {where}")


def _where(handle) -> str:
    owner = getattr(handle._callback, "__self__", None)
    coro = owner.get_coro() if owner is not None and hasattr(owner, "get_coro") else None
    frames = []
    while coro is not None:
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None) or getattr(coro, "ag_code", None)
        if code is None:
            break
        frames.append(code.co_qualname)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or \
            getattr(coro, "ag_await", None)
    return " > ".join(frames[-4:]) if frames else getattr(handle._callback, "__qualname__", "?")


def tail(lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100)
    return f"p50 {q[49]:.2f} / p99 {q[98]:.2f} / max {max(lat):.2f} ms; > p50+5 ms: {sum(x > q[49] + 5 for x in lat)}"


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--profile", default="", help="cProfile the through-gateway rounds into this file")
    ap.add_argument("--root", default="", help="the checkout to import the gateway from (default: this one)")
    ap.add_argument("--json", action="store_true", help="print the per-round numbers as one JSON line")
    ap.add_argument("--rate", type=float, default=0, help="instead of CPU rounds: open loop at this rate (tails)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--stall-ms", type=float, default=0, help="with --rate: report loop steps longer than this")
    args = ap.parse_args()
    port = free_port()
    log = Path(f"/tmp/mcp-inprocess-upstream-{port}.log")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "fast_mcp_upstream.py"), str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        store = MemoryDocumentStore()
        await seed(store, f"http://127.0.0.1:{port}/mcp")
        services, sink = build(store)
        plane = services.tools.mcp
        transport = plane.transport
        upstream = transport._pool._upstream  # the same MCP client (LeanWire) the toolbox uses
        ep = Endpoint(id="direct/a", url=f"http://127.0.0.1:{port}/mcp")
        session_headers = await open_session(transport)
        await through(transport, session_headers, 300, args.concurrency)  # warm caches and connections
        await direct(upstream, ep, 300, args.concurrency)
        if args.rate:
            async def via(i: int) -> None:
                headers, body = (MODERN_HEADERS, modern_body(i)) if i % 2 else (session_headers, legacy_body(i))
                reply = await transport.post(KEY, BOX, headers, body, f"o{i}", time.perf_counter())
                assert reply.status == 200

            async def plain(i: int) -> None:
                await upstream.request(ep, UpstreamSession(version="2026-07-28"), "tools/call",
                                       {"name": "shout", "arguments": {"text": "hi"}})

            probe = StallProbe(args.stall_ms) if args.stall_ms else None
            for name, send in (("direct", plain), ("through", via), ("direct", plain), ("through", via)):
                print(f"{name} @ {args.rate:g}/s: {tail(await open_loop(send, args.rate, args.seconds))}")
            if probe is not None:
                probe.report()
            await services.usage_log.close()
            return 0
        prof = cProfile.Profile() if args.profile else None
        gw, wire = [], []
        for _ in range(args.rounds):
            wire.append(await direct(upstream, ep, args.calls, args.concurrency))
            if prof:
                prof.enable()
            gw.append(await through(transport, session_headers, args.calls, args.concurrency))
            if prof:
                prof.disable()
        if prof:
            prof.dump_stats(args.profile)
        await services.usage_log.close()
        rows = len(sink.records)
        await services.aclose() if hasattr(services, "aclose") else None
    finally:
        proc.terminate()
        proc.wait(10)
    own = [g - w for g, w in zip(gw, wire)]
    if args.json:
        print(orjson.dumps({"direct": wire, "through": gw, "own": own}).decode())
        return 0
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds x {args.calls} calls, "
          f"concurrency {args.concurrency}; request-log rows {rows}")
    print("| path | CPU µs per call (median) | rounds |")
    print("|---|---|---|")
    for name, values in (("direct (McpUpstream + LeanWire)", wire), ("through the toolbox (McpTransport.post)", gw),
                         ("gateway's own (through − direct)", own)):
        print(f"| {name} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
