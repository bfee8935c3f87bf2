"""Prompt-injection / jailbreak heuristics: independent signals, each with a weight, combined as a noisy-or score
in [0, 1]. Runs on user and tool content (indirect injection arrives through tool results and documents)."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

_I = re.IGNORECASE
# (name, weight, lower-case hints — one must occur in the lower-cased text for the pattern to be tried, pattern)
_SIGNALS: tuple[tuple[str, float, tuple[str, ...], re.Pattern[str]], ...] = (
    ("ignore_instructions", 0.6, ("ignore", "disregard", "forget", "override", "bypass"), re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*(?:previous|prior|"
        r"above|earlier|preceding|system|original|initial)?\s*(?:instructions?|prompts?|rules|directions|guidelines|"
        r"context|messages?)\b", _I)),
    ("new_instructions", 0.35, ("instruction", "from now on"), re.compile(
        r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions?\s*:|\bfrom\s+now\s+on\s*,?\s+you\s+(?:will|"
        r"must|are)\b", _I)),
    ("role_play_jailbreak", 0.5, ("you are now", "act as", "pretend", "roleplay", "do anything", "developer mode",
                                  "jailbreak", "without"), re.compile(
        r"\b(?:you\s+are\s+now|act\s+as|pretend\s+(?:to\s+be|you\s+are)|roleplay\s+as)\s+(?:an?\s+)?(?:DAN|"
        r"unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)\b|\bdo\s+anything\s+now\b|\bdeveloper\s+mode\b|"
        r"\bjailbreak(?:en|ed)?\b|\bwithout\s+(?:any\s+)?(?:restrictions|filters|limitations|censorship)\b", _I)),
    ("reveal_system_prompt", 0.4, ("system prompt", "hidden", "initial instructions", "instructions above"),
     re.compile(
        r"\b(?:reveal|print|show|repeat|output|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|"
        r"hidden\s+(?:prompt|instructions)|initial\s+instructions|instructions\s+above)\b", _I)),
    ("hidden_markers", 0.4, ("<|", "inst]", "<<sys>>", "system", "instruction", "begin", "<!--"), re.compile(
        r"<\|im_start\|>|<\|im_end\|>|<\|system\|>|\[/?INST\]|<<SYS>>|<\s*/?\s*system\s*>|###\s*(?:system|"
        r"instruction)s?\s*:|BEGIN\s+(?:SYSTEM|HIDDEN)\s+(?:PROMPT|INSTRUCTIONS)|<!--[^>]{0,200}"
        r"(?:instruction|assistant|ignore)", _I)),
)
_TAGS = re.compile("[\U000e0000-\U000e007f]")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_B64 = re.compile(r"[A-Za-z0-9+/]{40,4096}={0,2}")
_MAX_BLOBS = 4  # bounded work per text


@dataclass(frozen=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]


def _decoded_blobs(text: str) -> list[str]:
    out: list[str] = []
    if max(map(len, text.split()), default=0) < 40:  # no long token, no blob: skip the regex scan (C-speed test)
        return out
    for m in _B64.finditer(text):
        if len(out) >= _MAX_BLOBS:
            break
        raw = m.group()
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = data.decode("utf-8", "ignore")
        if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) / len(decoded) > 0.9:
            out.append(decoded)
    return out


def _pattern_signals(text: str, prefix: str = "") -> dict[str, float]:
    lower = text.lower()
    return {prefix + name: weight for name, weight, hints, rx in _SIGNALS
            if any(h in lower for h in hints) and rx.search(text)}


def score(text: str) -> InjectionScore:
    found = _pattern_signals(text)
    tags = _TAGS.findall(text) if not text.isascii() else []
    if tags:
        found["unicode_tags"] = 0.6  # invisible to a human reader, read by the model
        hidden = "".join(chr(ord(c) - 0xE0000) for c in tags)
        found.update({k: w for k, w in _pattern_signals(hidden, "tags:").items()})
    if not text.isascii() and len(_INVISIBLE.findall(text)) >= 3:
        found["invisible_characters"] = 0.3
    for decoded in _decoded_blobs(text):
        found.update({k: max(w, 0.6) for k, w in _pattern_signals(decoded, "base64:").items()})
    remaining = 1.0
    for w in found.values():
        remaining *= 1 - w
    return InjectionScore(round(1 - remaining, 3), tuple(sorted(found)))
