"""Summarises a py-spy raw profile (collapsed stacks, `bench/mcp_toolbox.py --profile DIR`): the functions with
the most inclusive and self samples, as % of all samples, so a change can be judged by where the time went.

    .venv/bin/python -m bench.mcp_profile DIR/gateway.txt [--top 40] [--grep shared/pillars/tools]"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r" \(([^)]*?)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    """`fn (path/to/file.py:123)` → `fn (file-tail)`: lines dropped so one function is one row."""
    m = _LINE.search(frame)
    if not m:
        return frame
    path = m.group(1)
    tail = "/".join(path.split("/")[-3:])
    return f"{frame[:m.start()]} ({tail})"


def summarise(lines: list[str]) -> tuple[int, Counter[str], Counter[str]]:
    total, inclusive, self_ = 0, Counter(), Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_key(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        total += n
        for f in set(frames):
            inclusive[f] += n
        if frames:
            self_[frames[-1]] += n
    return total, inclusive, self_


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--grep", default="")
    args = ap.parse_args()
    total, inclusive, self_ = summarise(args.profile.read_text().splitlines())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    for title, counter in (("inclusive", inclusive), ("self", self_)):
        print(f"\n## {title} (% of {total} samples)")
        rows = [(k, v) for k, v in counter.most_common() if args.grep in k][: args.top]
        for k, v in rows:
            print(f"{100 * v / total:6.1f}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
