"""Benchmark (not a test): CPU of a toolbox `tools/call` on the caller's path, through the whole local host app.

The app as `python -m dev.host` serves it (`LocalHost` over `function_app.build_app`: route index, ApiBlueprint,
the data-plane guard with a real virtual key, `/mcp/{toolbox}`, the tools pipeline), memory document store,
counters and request-log sink (bench/mcp_inprocess.py's seed), `bench/fast_mcp_upstream.py` in its own process as
the server. Calls are sequential (what a caller sees at low rates). Per call, this process's CPU
(`time.process_time()`):

- *answered*: from the request to the moment its last body byte is handed to the server — what the caller waits for;
- *total*: to the moment the app returns (everything after the answer included: settle, request-log row, telemetry);
- *direct*: the same tool called with the gateway's own MCP client (`McpUpstream` over the lean wire), interleaved.

*answered − direct* is the gateway's own CPU on the caller's path, without the inbound HTTP server (uvicorn) and
the socket writes of the answer, which every Python proxy pays (bench/mcp_toolbox.py's `--floor`).

    .venv/bin/python -m bench.mcp_host_path [--calls 2000] [--rounds 7]
    .venv/bin/python -m bench.mcp_host_path --ab BASE_TREE      # BASE_TREE vs this tree, rounds interleaved
    .venv/bin/python -m bench.mcp_host_path --gap-ms 50 ...    # idle before each call: CPU on cold caches
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.percall_cpu import ADMIN, _asgi, interleaved  # one ASGI driver and one A/B loop for both


async def _setup():
    os.environ.update({"GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_KEY_HASH_SECRET": "bench-pepper-0123456789abcdef"})
    from bench.mcp_inprocess import BOX, TOOL, build, seed
    from dev.emulators import free_port
    from dev.host.app import LocalHost
    from dev.host.config import HostConfig
    from function_app import build_app
    from shared.pillars.tools.mcp.session import UpstreamSession
    from shared.pillars.tools.mcp.upstream import Endpoint
    from shared.storage.memory import MemoryDocumentStore
    from tests.support.mcp_servers import _wait_port

    port = free_port()
    log = Path(f"/tmp/mcp-host-path-upstream-{port}.log")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "fast_mcp_upstream.py"),
                             str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait_port(port, proc, log)
    store = MemoryDocumentStore()
    await seed(store, f"http://127.0.0.1:{port}/mcp")
    services, _ = build(store)
    env = {**json.load(open("local.settings.sample.json"))["Values"], **os.environ}
    host = LocalHost(build_app(services.settings, services), HostConfig(), env)  # not started: no timers, queues
    admin = [(b"authorization", f"Bearer {ADMIN}".encode()), (b"content-type", b"application/json")]
    status, out = await _asgi(host, "POST", "/api/manage/projects/bench/keys", b'{"name":"bench"}', admin)
    assert status in (200, 201), out
    secret = json.loads(out)["secret"]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": TOOL, "arguments": {"text": "hi"}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    headers = [(b"authorization", f"Bearer {secret}".encode()), (b"content-type", b"application/json"),
               (b"accept", b"application/json, text/event-stream"), (b"mcp-protocol-version", b"2026-07-28"),
               (b"mcp-method", b"tools/call"), (b"mcp-name", TOOL.encode())]
    upstream = services.tools.mcp.transport._pool._upstream
    ep = Endpoint(id="direct/a", url=f"http://127.0.0.1:{port}/mcp")

    async def through(marks: list[float]) -> None:
        status, out = await _asgi(host, "POST", f"/api/mcp/{BOX}", body, headers, marks)
        if status != 200 or b'"HI"' not in out:
            raise SystemExit(f"tools/call: HTTP {status} {out[:300]!r}")

    async def direct() -> None:
        res = await upstream.request(ep, UpstreamSession(version="2026-07-28"), "tools/call",
                                     {"name": "shout", "arguments": {"text": "hi"}})
        assert res["content"][0]["text"] == "HI"

    return through, direct, proc


async def _round(through, direct, calls: int, gap: float = 0.0) -> dict[str, float]:
    gc.collect()
    answered = total = 0.0
    for _ in range(calls):
        if gap:
            await asyncio.sleep(gap)
        marks: list[float] = []
        t0 = time.process_time()
        await through(marks)
        t1 = time.process_time()
        answered += marks[0] - t0
        total += t1 - t0
    wire = 0.0
    for _ in range(calls):
        if gap:
            await asyncio.sleep(gap)
        t0 = time.process_time()
        await direct()
        wire += time.process_time() - t0
    return {"answered": answered / calls * 1e6, "total": total / calls * 1e6, "direct": wire / calls * 1e6}


async def _child(calls: int, warm: int, gap: float = 0.0) -> None:
    through, direct, proc = await _setup()
    try:
        for _ in range(warm):
            await through([])
            await direct()
        gc.freeze()  # like the worker after warm-up
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            print(json.dumps(await _round(through, direct, calls, gap)), flush=True)
    finally:
        proc.terminate()


def _spawn(tree: str, calls: int, warm: int, gap_ms: float) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "bench.mcp_host_path", "--child", "--calls", str(calls),
                          "--warm", str(warm), "--gap-ms", str(gap_ms)], cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": tree})
    assert p.stdout is not None and p.stdout.readline().strip() == "ready", f"{tree}: child failed"
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ab", metavar="BASE_TREE")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=500)
    ap.add_argument("--gap-ms", type=float, default=0.0,
                    help="idle time before each call: 0 measures hot caches; 50 what a call at ~20 calls/s pays")
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        asyncio.run(_child(a.calls, a.warm, a.gap_ms / 1000))
        return
    here = str(Path(__file__).resolve().parents[1])
    trees = {"before": str(Path(a.ab).resolve()), "after": here} if a.ab else {"this tree": here}
    procs = {label: _spawn(tree, a.calls, a.warm, a.gap_ms) for label, tree in trees.items()}
    got: dict[str, list[dict[str, float]]] = interleaved(procs, a.rounds, json.loads)
    print(f"load average {os.getloadavg()[0]:.2f}; {a.rounds} rounds x {a.calls} sequential calls, "
          f"{a.gap_ms:g} ms idle before each")
    print("| tree | answered µs | total µs | direct µs | gateway's own on the caller's path (answered − direct) |")
    print("|---|---|---|---|---|")
    for label, rounds in got.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in ("answered", "total", "direct")}
        own = statistics.median(r["answered"] - r["direct"] for r in rounds)
        print(f"| {label} | {med['answered']:.0f} | {med['total']:.0f} | {med['direct']:.0f} | {own:.0f} |")


if __name__ == "__main__":
    main()
