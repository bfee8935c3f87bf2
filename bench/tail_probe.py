"""Where do the slow requests come from? An open-loop client (like the harness's openloop.py: evenly spaced sends,
keep-alive pool, raw HTTP/1.1) that keeps every request: send time, latency, status and the gateway's own
`x-gateway-overhead-ms` header (its time minus the upstream attempt). Prints the tail: how slow, how often, when
(periodic or not), and whether the gateway counted the extra time as its own.

    .venv/bin/python bench/tail_probe.py --url http://127.0.0.1:4100/v1/chat/completions --auth "Bearer sk-…" \
        --rate 200 --duration 20 [--out rows.json]

Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

BODY = Path("/work/shared/bench/body.json")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, headers.get(b"connection", b"").lower() == b"close"


async def run(a: argparse.Namespace) -> list[dict]:
    u = urlparse(a.url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("loopback targets only")
    body = Path(a.body).read_bytes()
    req = (f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n" + (f"Authorization: {a.auth}\r\n" if a.auth else "") + "\r\n"
           ).encode() + body
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    rows: list[dict] = []
    for _ in range(8):
        idle.append(await asyncio.open_connection(u.hostname, u.port))

    async def one(i: int, t_sched: float) -> None:
        conn = None
        while idle:
            c = idle.pop()
            if not (c[0].at_eof() or c[1].is_closing()):
                conn = c
                break
        new = conn is None
        if conn is None:
            conn = await asyncio.open_connection(u.hostname, u.port)
        r, w = conn
        t0 = time.perf_counter()
        try:
            w.write(req)
            status, headers, close = await asyncio.wait_for(read_response(r), 10)
        except Exception as exc:  # noqa: BLE001
            w.close()
            rows.append({"i": i, "t": t0 - start, "ms": None, "error": type(exc).__name__})
            return
        ms = (time.perf_counter() - t0) * 1000
        ov = headers.get(b"x-gateway-overhead-ms")
        rows.append({"i": i, "t": round(t0 - start, 4), "ms": round(ms, 3), "status": status, "new_conn": new,
                     "late_ms": round((t0 - t_sched) * 1000, 3),
                     "gw_overhead_ms": float(ov) if ov else None})
        if close:
            w.close()
        else:
            idle.append(conn)

    start = time.perf_counter() + 0.05
    tasks = []
    n = int(a.rate * a.duration)
    for i in range(n):
        t = start + i / a.rate
        d = t - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        tasks.append(asyncio.ensure_future(one(i, t)))
    await asyncio.wait(tasks, timeout=15)
    for r, w in idle:
        w.close()
    return rows


def report(rows: list[dict], slow_ms: float) -> None:
    ok = [r for r in rows if r.get("ms") is not None]
    lat = sorted(r["ms"] for r in ok)
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))]  # noqa: E731
    print(f"requests {len(rows)}, errors {len(rows) - len(ok)}; latency p50 {q(50):.2f} p90 {q(90):.2f} "
          f"p99 {q(99):.2f} p99.9 {q(99.9):.2f} max {lat[-1]:.2f} ms")
    slow = [r for r in ok if r["ms"] > slow_ms]
    print(f"slow (> {slow_ms} ms): {len(slow)} ({100 * len(slow) / max(1, len(ok)):.2f}%)")
    if not slow:
        return
    ov = [r["gw_overhead_ms"] for r in slow if r.get("gw_overhead_ms") is not None]
    fast_ov = [r["gw_overhead_ms"] for r in ok if r["ms"] <= slow_ms and r.get("gw_overhead_ms") is not None]
    if ov:
        print(f"  gateway-reported overhead of the slow ones: median {statistics.median(ov):.2f} ms, max {max(ov):.2f} "
              f"(of the others: median {statistics.median(fast_ov):.2f} ms) -> "
              + ("the extra time is inside the gateway's own measurement" if statistics.median(ov) > slow_ms / 2
                 else "the extra time is outside it (upstream attempt, socket/uvicorn before or after the handler, "
                      "or the client)"))
    print(f"  on a new connection: {sum(1 for r in slow if r['new_conn'])}; sent late (> 1 ms): "
          f"{sum(1 for r in slow if r['late_ms'] > 1)}")
    # clusters: slow requests within 50 ms of each other
    clusters: list[list[dict]] = []
    for r in sorted(slow, key=lambda r: r["t"]):
        if clusters and r["t"] - clusters[-1][-1]["t"] < 0.05:
            clusters[-1].append(r)
        else:
            clusters.append([r])
    starts = [c[0]["t"] for c in clusters]
    gaps = [round(b - a, 2) for a, b in zip(starts, starts[1:])]
    print(f"  {len(clusters)} clusters at t = {', '.join(f'{s:.2f}' for s in starts[:30])}"
          + (" …" if len(starts) > 30 else ""))
    if gaps:
        print(f"  gaps between clusters (s): median {statistics.median(gaps):.2f}, {gaps[:20]}")
    print(f"  worst: {[(r['t'], r['ms'], r.get('gw_overhead_ms')) for r in sorted(slow, key=lambda r: -r['ms'])[:8]]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--auth", default="")
    ap.add_argument("--body", default=str(BODY))
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--slow-ms", type=float, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()
    try:
        import uvloop

        rows = uvloop.run(run(a))
    except ImportError:
        rows = asyncio.run(run(a))
    if a.out:
        Path(a.out).write_text(json.dumps(rows))
    report(rows, a.slow_ms)


if __name__ == "__main__":
    main()
