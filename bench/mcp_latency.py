"""Benchmark (not a test): added latency of one `tools/call` through a toolbox, measured with the least noise this
machine allows — sequential calls over raw keep-alive sockets, paths interleaved call by call.

bench/mcp_toolbox.py drives open-loop rates with an httpx client; on 2 cores that client's own ~0.3–0.5 ms of CPU
per call competes with the proxies it measures, and its p99 at 20 calls/s is the maximum of a few hundred calls
moved by everything else on the VM. Here each call is one `sendall` of a prebuilt request and a `recv` loop (a few
µs of client CPU), one call at a time, and every path gets its call in turn before the next round, so a noisy
minute hits all paths alike. `--gaps` sets the idle time before each call: 50 ms is what a path sees at ~20
calls/s (cold caches: the VM gives the idle vCPU to others), 5 ms ~200 calls/s, 0 back to back (hot).

Paths: direct to the server (bench/fast_mcp_upstream.py), the floor (bench/null_mcp_proxy.py: uvicorn + the
gateway's lean client, no governance), the gateway toolbox (`dev.host`, emulators for the registry and logs), and
with `--baseline DIR` a second gateway from another checkout over the same registry and key.

    .venv/bin/python -m bench.mcp_latency [--calls 400] [--gaps 50,5,0] [--baseline /tmp/base] [--stall-probe F]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit


from bench.mcp_fixture import bench_key, gateway, gateway_env, stop_all
from bench.mcp_toolbox import (META, MODERN, ROOT, Emulators, Fleet, Ports, _wait_port, cpu_times, free_port, launch,
                               probed, seed)


class RawPath:
    """One keep-alive connection and one prebuilt `tools/call` request (2026-07-28 envelope)."""

    def __init__(self, url: str, tool: str, key: str | None) -> None:
        u = urlsplit(url)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": tool, "arguments": {"text": "hello"}, "_meta": META}}).encode()
        head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
                f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {MODERN}\r\n"
                f"Mcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
                + (f"Authorization: Bearer {key}\r\n" if key else "") + f"Content-Length: {len(body)}\r\n\r\n")
        self.request = head.encode() + body
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self) -> float:
        """One call; its latency in ms (request written → last byte of the answer read)."""
        t0 = time.perf_counter()
        self.sock.sendall(self.request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, rest = buf.partition(b"\r\n\r\n")
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while not rest.endswith(b"0\r\n\r\n"):
                rest += self._recv()
        else:
            size = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < size:
                rest += self._recv()
        ms = (time.perf_counter() - t0) * 1000
        if not head.startswith(b"HTTP/1.1 200") or b"HELLO" not in rest:
            raise SystemExit(f"unexpected answer: {head[:200]!r} {rest[:200]!r}")
        return ms

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("the server closed the connection")
        return data


def measure(paths: dict[str, RawPath], calls: int, gap_ms: float) -> dict[str, list[float]]:
    lat: dict[str, list[float]] = {name: [] for name in paths}
    for p in paths.values():
        for _ in range(20):  # warm the connection and every cache on the path
            p.call()
    order = list(paths)
    for i in range(calls):
        for name in order if i % 2 == 0 else reversed(order):  # alternate who follows whom
            if gap_ms:
                time.sleep(gap_ms / 1000)
            lat[name].append(paths[name].call())
    return lat


def run_gaps(paths: dict[str, RawPath], calls: int, gaps: str) -> None:
    """One measurement and table per gap in `gaps` ("50,5,0"), with the hypervisor steal over its minutes."""
    for gap in (float(g) for g in gaps.split(",")):
        a0, s0 = cpu_times()
        lat = measure(paths, calls, gap)
        a1, s1 = cpu_times()
        report(lat, gap, 100 * (s1 - s0) / max(1, a1 - a0))


def report(lat: dict[str, list[float]], gap_ms: float, steal: float) -> None:
    base = statistics.median(lat["direct"])
    base_p99 = _pct(lat["direct"], 0.99)
    print(f"\ngap {gap_ms:g} ms before each call ({len(lat['direct'])} calls per path, hypervisor steal {steal:.0f} %)")
    print("| path | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |")
    print("|---|---|---|---|---|---|")
    for name, values in lat.items():
        p50, p90, p99 = statistics.median(values), _pct(values, 0.9), _pct(values, 0.99)
        added = "–" if name == "direct" else f"{p50 - base:+.2f}"
        added99 = "–" if name == "direct" else f"{p99 - base_p99:+.2f}"
        print(f"| {name} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {added} | {added99} |")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _setup(work: Path, baseline: Path | None, probe: Path | None, stop: list[Callable[[], None]]
                 ) -> dict[str, RawPath]:
    emu = Emulators(work / "emu", Ports.free())
    stop.append(emu.stop)
    emu.start()
    port = free_port()
    server = launch("sdk", [sys.executable, str(ROOT / "bench" / "fast_mcp_upstream.py"), str(port)], port, "/mcp",
                    work)
    stop.append(server.stop)
    _wait_port(port, server.proc, server.log)
    env = gateway_env(emu)
    if probe is not None:  # the toolbox's gateway under bench/gcprobe: GC pauses and loop steps over 1 ms
        gw = gateway(probed(ROOT, work), {**env, "GC_PROBE_OUT": str(probe.resolve()), "LOOP_PROBE_MS": "1",
                                          "LOOP_PROBE_FRAMES": "14"}, work, "gateway")
    else:
        gw = gateway(ROOT, env, work, "gateway")
    stop.append(gw.stop)
    key = bench_key(gw.url, env["GATEWAY_ADMIN_KEY"])
    box = await seed(emu.cosmos_connection_string, env["COSMOS_DATABASE"], "bench", Fleet(servers={"sdk": server}))
    floor_port = free_port()
    floor = launch("floor", [sys.executable, str(ROOT / "bench" / "null_mcp_proxy.py"), str(floor_port), server.url],
                   floor_port, "/mcp", work)
    stop.append(floor.stop)
    _wait_port(floor_port, floor.proc, floor.log)
    paths = {"direct": RawPath(server.url, "shout", None), "floor": RawPath(floor.url, "shout", None)}
    if baseline is not None:
        old = gateway(baseline.resolve(), env, work, "baseline")
        stop.append(old.stop)
        paths[f"baseline ({baseline.name})"] = RawPath(f"{old.url}/mcp/{box.toolbox}", "sdk__shout", key)
    paths["gateway toolbox"] = RawPath(f"{gw.url}/mcp/{box.toolbox}", "sdk__shout", key)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--gaps", default="50,5,0", help="idle ms before each call, one measurement per value")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout served by a second gateway")
    ap.add_argument("--stall-probe", type=Path, default=None,
                    help="run the toolbox's gateway under bench/gcprobe (loop steps over 1 ms, GC) and write its "
                         "summary here")
    args = ap.parse_args()
    stop: list[Callable[[], None]] = []
    try:
        paths = asyncio.run(_setup(Path(tempfile.mkdtemp(prefix="mcp-latency-")), args.baseline, args.stall_probe,
                                   stop))
        run_gaps(paths, args.calls, args.gaps)
    finally:
        stop_all(stop)


if __name__ == "__main__":
    main()
