"""Reading the `usage` an upstream reports, which the gateway charges quotas and budgets with. An upstream is not
trusted to send well-typed numbers: anything but non-negative integers in a sane range (strings, floats, booleans,
negatives, 10**30, nested junk) counts as "no usage reported", and the gateway's own estimate is charged instead."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# No single call uses more tokens than this; a larger count is junk, not a bill.
MAX_REPORTED_TOKENS = 100_000_000


@dataclass(frozen=True)
class Usage:
    prompt: int
    completion: int


def _count(value: Any) -> int | None:
    # bool is an int subclass: `true` is not a token count.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPORTED_TOKENS:
        return value
    return None


def read_usage(raw: Any) -> Usage | None:
    """The usage object of a completion, embedding or stream chunk, or None when absent or not trustworthy.
    `completion_tokens` may be absent (embeddings report only prompt and total tokens)."""
    if not isinstance(raw, dict):
        return None
    prompt = _count(raw.get("prompt_tokens"))
    completion = _count(raw.get("completion_tokens", 0))
    if prompt is None or completion is None:
        return None
    return Usage(prompt, completion)
