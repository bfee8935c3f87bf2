"""Benchmark (not a test): where one `tools/call`'s wall time goes inside the gateway, stage by stage.

The app as bench/mcp_host_path.py builds it (LocalHost over `build_app`, a real virtual key, memory stores, the MCP
server in its own process). Boundaries of the main stages are timed (`perf_counter_ns` around a method: the
dispatcher, the guard and key check, the transport, the pipeline's resolve/prepare/admit/send, the MCP client's
exchange and wire request, the after-send finish); each row is the median wall time between two consecutive
boundaries over the calls. `--gaps`: idle ms before each call — 0 runs every step on hot caches, 50 is what a call
sees at ~20 calls/s (its code and data evicted by the idle VM's other tenants; every step ~2–3x slower).

    .venv/bin/python -m bench.mcp_timeline [--calls 400] [--gaps 0,50]
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import time
from collections import defaultdict
from typing import Any

from bench.mcp_host_path import _setup

MARKS: list[tuple[str, int]] = []


def _timed(cls: type, name: str, label: str) -> None:
    f = getattr(cls, name)
    if asyncio.iscoroutinefunction(f):
        @functools.wraps(f)
        async def wrapper(*a: Any, **k: Any) -> Any:
            MARKS.append((label + ">", time.perf_counter_ns()))
            try:
                return await f(*a, **k)
            finally:
                MARKS.append((label + "<", time.perf_counter_ns()))
    else:
        @functools.wraps(f)
        def wrapper(*a: Any, **k: Any) -> Any:
            MARKS.append((label + ">", time.perf_counter_ns()))
            try:
                return f(*a, **k)
            finally:
                MARKS.append((label + "<", time.perf_counter_ns()))
    setattr(cls, name, wrapper)


def instrument() -> None:
    from dev.host.http import HttpDispatcher
    from shared.auth.guards import DataPlaneGuard
    from shared.auth.keys import KeyService
    from shared.flags.service import FlagService
    from shared.pillars.tools.calls import ToolCalls
    from shared.pillars.tools.gateway import ToolboxServer
    from shared.pillars.tools.mcp.upstream import McpUpstream
    from shared.pillars.tools.transport import McpTransport
    from shared.pipeline.pipeline import Pipeline
    from shared.upstreams.lean_http import LeanHttp
    for cls, name, label in [
            (HttpDispatcher, "__call__", "dispatch"), (DataPlaneGuard, "__call__", "guard"),
            (KeyService, "authenticate", "key"), (FlagService, "check", "flags"), (McpTransport, "post", "transport"),
            (ToolboxServer, "handle", "handle"), (Pipeline, "_run", "pipeline"), (Pipeline, "_resolve_now", "resolve"),
            (ToolCalls, "prepare", "prepare"), (Pipeline, "_admit_now", "admit"), (Pipeline, "_send_now", "send"),
            (McpUpstream, "_exchange", "exchange"), (LeanHttp, "request", "wire"), (McpUpstream, "_read", "read"),
            (Pipeline, "_finish", "finish")]:
        _timed(cls, name, label)


async def run(calls: int, gaps: list[float]) -> None:
    instrument()
    through, _direct, proc = await _setup()
    try:
        for _ in range(500):
            await through([])
        gc.freeze()
        for gap in gaps:
            rows: dict[str, list[float]] = defaultdict(list)
            for _ in range(calls):
                if gap:
                    await asyncio.sleep(gap / 1000)
                MARKS.clear()
                t0 = time.perf_counter_ns()
                await through([])
                seq = [("start", t0), *MARKS, ("end", time.perf_counter_ns())]
                for (a, ta), (b, tb) in zip(seq, seq[1:]):
                    rows[f"{a} → {b}"].append((tb - ta) / 1000)
            print(f"\ngap {gap:g} ms before each call ({calls} calls; medians, µs; `wire>` → `wire<` is the upstream "
                  "round trip, `finish` runs after the answer was sent)")
            print("| between | µs |\n|---|---|")
            for row, values in rows.items():
                print(f"| {row} | {statistics.median(values):.1f} |")
            print(f"| **sum of medians** | **{sum(statistics.median(v) for v in rows.values()):.0f}** |")
    finally:
        proc.terminate()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--gaps", default="0,50")
    a = ap.parse_args()
    asyncio.run(run(a.calls, [float(g) for g in a.gaps.split(",")]))


if __name__ == "__main__":
    main()
