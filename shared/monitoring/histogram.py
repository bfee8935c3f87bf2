"""A fixed-bucket, log-spaced latency histogram: mergeable by adding counts, so hourly rollups add up to days.

Bucket i holds values in (BASE·GROWTH^(i-1), BASE·GROWTH^i]; a percentile is answered with its bucket's
geometric midpoint, so any reported percentile is within ±2.5 % (√1.05 − 1 ≈ 2.47 %) of the true nearest-rank
value for latencies from 0.1 ms to ~10⁷ ms (anything outside is clamped to the first/last bucket).
"""
from __future__ import annotations

import math

BASE_MS = 0.1
GROWTH = 1.05
MAX_INDEX = 380  # 0.1 ms · 1.05^380 ≈ 1.1·10⁷ ms
RELATIVE_ERROR = math.sqrt(GROWTH) - 1
_LOG_GROWTH = math.log(GROWTH)


def bucket(value_ms: float) -> int:
    if not value_ms > BASE_MS:  # also NaN
        return 0
    return min(MAX_INDEX, math.ceil(math.log(value_ms / BASE_MS) / _LOG_GROWTH - 1e-9))


def representative(index: int) -> float:
    return BASE_MS if index == 0 else BASE_MS * GROWTH ** (index - 0.5)


def add(hist: dict[int, int], value_ms: float, n: int = 1) -> None:
    i = bucket(value_ms)
    hist[i] = hist.get(i, 0) + n


def merge(into: dict[int, int], other: dict[int, int]) -> None:
    for i, n in other.items():
        into[i] = into.get(i, 0) + n


def percentile(hist: dict[int, int], p: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least p % of observations at or below it)."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= rank:
            return round(representative(i), 3)
    return round(representative(max(hist)), 3)  # unreachable: seen reaches total


def encode(hist: dict[int, int]) -> str:
    return ",".join(f"{i}:{n}" for i, n in sorted(hist.items()) if n)


def decode(text: str | None) -> dict[int, int]:
    out: dict[int, int] = {}
    for part in (text or "").split(","):
        i, _, n = part.partition(":")
        if i.isdigit() and n.isdigit() and int(i) <= MAX_INDEX:
            out[int(i)] = out.get(int(i), 0) + int(n)
    return out
