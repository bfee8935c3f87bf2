"""Benchmark (not a test): before/after A/B of the gateway's own CPU per toolbox `tools/call`, in process.

Alternates `bench/mcp_inprocess.py` runs (one round each, same calls) between a baseline checkout and this tree, so
background load on a shared machine hits both alike; prints the medians of the per-run CPU µs per call.

    .venv/bin/python -m bench.mcp_ab --baseline /path/to/main-checkout [--pairs 5] [--calls 2000]"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve()


def one(root: Path, calls: int, concurrency: int) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, str(HERE.parent / "mcp_inprocess.py"), "--root", str(root), "--rounds",
                          "1", "--calls", str(calls), "--concurrency", str(concurrency), "--json"],
                         capture_output=True, text=True, timeout=600, cwd=root)
    if out.returncode != 0:
        raise SystemExit(f"{root}: {out.stderr[-2000:]}")
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    trees = {"before (baseline)": args.baseline.resolve(), "after (this tree)": HERE.parents[1]}
    runs: dict[str, dict[str, list[float]]] = {n: {"direct": [], "through": [], "own": []} for n in trees}
    loads = []
    for _ in range(args.pairs):
        for name, root in trees.items():
            for k, v in one(root, args.calls, args.concurrency).items():
                runs[name][k].extend(v)
            loads.append(os.getloadavg()[0])
    print(f"{args.pairs} pairs x {args.calls} calls, concurrency {args.concurrency}; "
          f"load average {min(loads):.1f}–{max(loads):.1f}")
    print("| tree | direct µs/call | through the toolbox µs/call | gateway's own µs/call | own, per run |")
    print("|---|---|---|---|---|")
    for name, r in runs.items():
        print(f"| {name} | {statistics.median(r['direct']):.0f} | {statistics.median(r['through']):.0f} | "
              f"{statistics.median(r['own']):.0f} | {', '.join(f'{v:.0f}' for v in r['own'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
