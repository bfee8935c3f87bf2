"""Overload run (issue 13, docs/runbook.md "Overload"): closed-loop load at rising concurrency against a running
gateway; per level: served calls/s, shed calls/s (503 gateway_overloaded with Retry-After), other errors, latency
of served and of shed calls, and the gateway's own admission counters from /readyz. No assertions: a measurement.

    python bench/overload.py --url http://127.0.0.1:4100/v1/chat/completions --auth "Bearer sk-gw-…" \
        --body /work/shared/bench/body.json [-c 10,50,100,200] [-d 10] [--out overload.json]

`bench/run_gateway_bench.sh` runs it with OVERLOAD=1 (after the harness) or ONLY_OVERLOAD=1 (nothing else), the
gateway started with OVERLOAD_ENV (default: a small in-flight limit and queue, so shedding shows on one core).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from urllib.parse import urlsplit

import aiohttp


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 2)


async def _admission(session: aiohttp.ClientSession, base: str) -> dict:
    try:
        async with session.get(f"{base}/readyz") as r:
            return (await r.json()).get("checks", {}).get("admission", {})
    except (aiohttp.ClientError, ValueError):
        return {}


async def level(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, c: int,
                seconds: float, honour: bool) -> dict:
    statuses: Counter[str] = Counter()
    served, shed = [], []
    retry_after_missing = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal retry_after_missing
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    ms = (time.perf_counter() - t) * 1000
                    if r.status == 200:
                        served.append(ms)
                    elif r.status == 503 and r.headers.get("x-gateway-shed"):
                        shed.append(ms)
                        retry_after_missing += "retry-after" not in r.headers
                    statuses[str(r.status)] += 1
                    if honour and r.status == 503 and "retry-after" in r.headers:
                        # as the OpenAI SDKs do: wait what the gateway asked (bounded by the level's end)
                        await asyncio.sleep(min(float(r.headers["retry-after"]), max(0.0, stop - time.perf_counter())))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    wall = time.perf_counter() - t0
    return {"c": c, "honours_retry_after": honour, "seconds": round(wall, 2), "served_per_s": round(len(served) / wall, 1),
            "shed_per_s": round(len(shed) / wall, 1), "statuses": dict(statuses),
            "served_ms": {"p50": _pct(served, 50), "p99": _pct(served, 99),
                          "max": round(max(served), 2) if served else None},
            "shed_ms": {"p50": _pct(shed, 50), "p99": _pct(shed, 99)},
            "shed_without_retry_after": retry_after_missing}


async def main(a: argparse.Namespace) -> None:
    parts = urlsplit(a.url)
    base = f"{parts.scheme}://{parts.netloc}"
    headers = {"content-type": "application/json", "authorization": a.auth}
    body = open(a.body, "rb").read()
    results = []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        for honour in (False, True):
            print("clients " + ("honour Retry-After (as the OpenAI SDKs do)" if honour else
                                "re-send at once, ignoring Retry-After (wrk-like; the worst case)"))
            for c in [int(x) for x in a.c.split(",")]:
                before = await _admission(session, base)
                row = await level(session, a.url, headers, body, c, a.d, honour)
                after = await _admission(session, base)
                row["admission"] = {k: after.get(k, 0) - before.get(k, 0)
                                    for k in ("admitted", "waited", "shed", "shed_queue_full", "shed_queue_timeout")}
                row["admission"]["peak_in_flight"] = after.get("peak_in_flight")
                row["admission"]["limits"] = {k: after.get(k) for k in ("max_in_flight", "max_queue")}
                results.append(row)
                print(f"  c={c:>4}  served {row['served_per_s']:>7}/s  p50 {row['served_ms']['p50']} ms  "
                      f"p99 {row['served_ms']['p99']} ms | shed {row['shed_per_s']:>7}/s  p50 "
                      f"{row['shed_ms']['p50']} ms | statuses {row['statuses']} | gateway counted shed "
                      f"{row['admission']['shed']}", flush=True)
                await asyncio.sleep(1)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
    median_served = statistics.median(r["served_per_s"] for r in results) if results else 0
    print(f"median served/s over the levels: {median_served}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--auth", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("-c", default="10,50,100,200")
    ap.add_argument("-d", type=float, default=10.0)
    ap.add_argument("--out")
    asyncio.run(main(ap.parse_args()))
