"""What a check found: a span of one text and a label (never the text itself: verdicts and logs carry labels)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    label: str  # e.g. "email", "deny_list"; used in the redaction marker


def redact(text: str, matches: list[Match]) -> str:
    """Replace each matched span with `[REDACTED:<label>]`; overlapping spans are merged (first label kept)."""
    if not matches:
        return text
    out, pos = [], 0
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.end <= pos:
            continue
        start = max(m.start, pos)
        if start > pos:
            out.append(text[pos:start])
        if start == m.start:
            out.append(f"[REDACTED:{m.label}]")
        pos = m.end
    out.append(text[pos:])
    return "".join(out)
