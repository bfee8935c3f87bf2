"""Benchmark (not a test): CPU per upstream `tools/call` of the gateway's MCP client, in process, by wire —
`HttpxWire` (the egress-guarded httpx.AsyncClient, what the toolbox used before) and `LeanWire` (what the toolbox
uses: lean HTTP/1.1 over egress-checked connections) — against bench/fast_mcp_upstream.py in its own process.
Rounds alternate between the wires, so background load on a shared machine hits both alike; CPU is this process's
time (time.process_time) per call; the upstream's CPU is not counted.

    .venv/bin/python -m bench.mcp_wire [--calls 2000] [--rounds 4] [--concurrency 16]"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dev.emulators import free_port  # noqa: E402
from shared.egress import EgressPolicy  # noqa: E402
from shared.upstreams.lean_http import LeanHttp as LeanWire  # noqa: E402
from shared.pillars.tools.mcp.session import UpstreamSession  # noqa: E402
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream  # noqa: E402
from shared.pillars.tools.mcp.wire import HttpxWire  # noqa: E402
from shared.upstreams.egress_transport import guarded_client  # noqa: E402
from tests.support.mcp_servers import _wait_port  # noqa: E402

import httpx  # noqa: E402


async def round_(up: McpUpstream, ep: Endpoint, session: UpstreamSession, calls: int, workers: int) -> float:
    left = iter(range(calls))

    async def worker() -> None:
        for _ in left:
            res = await up.request(ep, session, "tools/call", {"name": "shout", "arguments": {"text": "hi"}})
            assert res["content"][0]["text"] == "HI"

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return (time.process_time() - t0) / calls * 1e6


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    port = free_port()
    log = Path(f"/tmp/mcp-wire-upstream-{port}.log")
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fast_mcp_upstream.py"), str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        policy = EgressPolicy(allow_loopback=True)
        http = guarded_client(policy, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
        lean = LeanWire(policy, max_connections=1000)
        wires = {"httpx client (before)": HttpxWire(http), "lean HTTP/1.1 (LeanWire, used)": lean}
        ups = {name: McpUpstream(http, timeout=30, max_bytes=8 << 20, wire=w) for name, w in wires.items()}
        ep = Endpoint(id="bench/a", url=f"http://127.0.0.1:{port}/mcp")
        session = UpstreamSession(version="2026-07-28")
        per: dict[str, list[float]] = {name: [] for name in wires}
        for name, up in ups.items():
            await round_(up, ep, session, 200, args.concurrency)  # warm connections
        for _ in range(args.rounds):
            for name, up in ups.items():
                per[name].append(await round_(up, ep, session, args.calls, args.concurrency))
        await http.aclose()
        await lean.aclose()
    finally:
        proc.terminate()
        proc.wait(10)
    print("| wire | CPU µs per call (median of rounds) | rounds |")
    print("|---|---|---|")
    for name, values in per.items():
        print(f"| {name} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
