"""Fitting a request-log row inside Azure Tables' limits, whatever the client sent.

Tables measures strings in UTF-16: a property holds at most 64 KiB (32,768 code units) and an entity at most
1 MiB. Clipping by Python characters is wrong by up to 2x — an emoji is one character but two code units — and
one oversized property used to fail its whole batch (other projects' rows included).
"""
from __future__ import annotations

from typing import Any

MAX_PROPERTY_UNITS = 32_000  # < 32,768: headroom below the 64 KiB property limit
MAX_ENTITY_BYTES = 900_000  # < 1 MiB, by Tables' own size formula (below)
MARKER = "…[truncated]"
PAYLOAD_FIELDS = ("prompt", "completion", "attempts")  # the only client- or upstream-sized properties


def utf16_units(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def clip_utf16(text: str, limit: int = MAX_PROPERTY_UNITS) -> str:
    if 2 * len(text) <= limit or utf16_units(text) <= limit:  # the first test: even all-astral text fits
        return text
    # Cut on a code-unit boundary; a surrogate pair cut in half is dropped by errors="ignore".
    head = text.encode("utf-16-le")[: 2 * (limit - len(MARKER))].decode("utf-16-le", errors="ignore")
    return head + MARKER


def entity_bytes(entity: dict[str, Any]) -> int:
    """Tables' documented size: 4 + per property 8 + 2·len(name) + the value (strings 4 + 2·units)."""
    size = 4
    for name, value in entity.items():
        size += 8 + 2 * len(name) + (4 + 2 * utf16_units(value) if isinstance(value, str) else 8)
    return size


def fit(entity: dict[str, Any]) -> dict[str, Any]:
    """Every string clipped to the property limit, then the payload fields shortened until the entity fits."""
    for name, value in entity.items():
        if isinstance(value, str) and len(value) > MAX_PROPERTY_UNITS // 2:
            entity[name] = clip_utf16(value)
    while entity_bytes(entity) > MAX_ENTITY_BYTES:
        longest = max((n for n in PAYLOAD_FIELDS if isinstance(entity.get(n), str)),
                      key=lambda n: len(entity[n]), default=None)
        if longest is None or len(entity[longest]) <= len(MARKER):
            break  # nothing client-sized left to shorten: the writer's fallback handles it
        entity[longest] = clip_utf16(entity[longest], utf16_units(entity[longest]) // 2)
    return entity


def without_payload(entity: dict[str, Any], reason: str) -> dict[str, Any]:
    """The row's accounting without prompt/completion/attempts: what is kept when Tables refuses the full row."""
    slim = {k: v for k, v in entity.items() if k not in PAYLOAD_FIELDS}
    slim["log_error"] = reason[:500]
    return slim
