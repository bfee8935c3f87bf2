"""Output checks on a stream: a sliding window over each choice's text.

Text is released to the client only once it is `window` characters behind the newest text, where `window` is the
longest match any of the span checks can make — so a match split across chunks is always whole before any of it
leaves. Latency stays bounded: at most `window` characters (a few hundred) are held back, and everything left is
released when the choice finishes. A `block` match anywhere in the held-back text ends the stream at once; the
blocked text never leaves the gateway and never reaches the log (only what was released is logged).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from .checks import SpanCheck
from .engine import CompiledCheck, Verdict, _blocked
from .matches import Match, redact

_CONTEXT = 32  # released characters kept for look-behind (word boundaries) at the start of the window


@dataclass
class _Tally:
    hits: int = 0
    ms: float = 0.0


class WindowGuard:
    def __init__(self, checks: list[tuple[CompiledCheck, SpanCheck]]) -> None:
        self._checks = checks
        self.window = max((sc.window for _, sc in checks), default=0)  # no span check: nothing held back
        self._pending = ""
        self._context = ""
        self.tally: dict[int, _Tally] = {i: _Tally() for i in range(len(checks))}

    def feed(self, text: str) -> str:
        self._pending += text
        return self._release(final=False)

    def flush(self) -> str:
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        text = self._context + self._pending
        offset = len(self._context)
        cut = len(text) if final else max(offset, len(text) - self.window)
        spans: list[Match] = []
        for i, (check, sc) in enumerate(self._checks):
            t0 = time.perf_counter()
            found = [m for m in sc.scan(text) if m.end > offset]
            self.tally[i].ms += (time.perf_counter() - t0) * 1000
            if found and check.spec.action == "block":
                self.tally[i].hits += len(found)
                raise _blocked(self._verdict(i), self.verdicts())
            for m in found:
                if m.start < cut < m.end:
                    cut = max(offset, m.start)  # never release part of a match
            released = [m for m in found if m.end <= cut]
            self.tally[i].hits += len(released)
            if check.spec.action == "redact":
                spans += [Match(m.start - offset, m.end - offset, m.label) for m in released if m.start >= offset]
        out = redact(text[offset:cut], spans)
        self._context = text[max(0, cut - _CONTEXT):cut]
        self._pending = text[cut:]
        return out

    def _verdict(self, i: int) -> Verdict:
        check, _ = self._checks[i]
        t = self.tally[i]
        return Verdict(check.policy, check.spec.name, check.spec.type, check.spec.action, "output", t.hits, t.ms,
                       {"streamed": True})

    def verdicts(self) -> list[Verdict]:
        return [self._verdict(i) for i, t in self.tally.items() if t.hits]


@dataclass
class GuardedSse:
    """Rewrites complete SSE events of a chat completion stream (the output of SseRelay.feed)."""

    checks: list[tuple[CompiledCheck, SpanCheck]]
    guards: dict[int, WindowGuard] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)  # what the client got: the only completion text logged

    def _guard(self, index: int) -> WindowGuard:
        if index not in self.guards:
            self.guards[index] = WindowGuard(self.checks)
        return self.guards[index]

    def events(self, data: bytes) -> bytes:
        out = []
        for event in data.split(b"\n\n"):
            if event.strip():
                out.append(self._event(event))
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        payload = b"".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
        if payload == b"[DONE]":
            return self._flush_all() + event + b"\n\n"
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict) or not obj.get("choices"):
            return event + b"\n\n"
        for choice in obj["choices"]:
            delta = choice.get("delta") or {}
            index = int(choice.get("index") or 0)
            text = delta.get("content")
            released = self._guard(index).feed(text) if isinstance(text, str) else ""
            if choice.get("finish_reason"):
                released += self._guard(index).flush()
            if isinstance(text, str) or released:
                delta["content"] = released
                choice["delta"] = delta
                self.released.append(released)
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def _flush_all(self) -> bytes:
        rest = []
        for index, g in self.guards.items():
            text = g.flush()
            if text:
                self.released.append(text)
                rest.append({"index": index, "delta": {"content": text}, "finish_reason": None})
        return b"data: " + orjson.dumps({"object": "chat.completion.chunk", "choices": rest}) + b"\n\n" if rest \
            else b""

    def verdicts(self) -> list[Verdict]:
        return merge_verdicts(self.guards.values())


def merge_verdicts(guards: Iterable[WindowGuard]) -> list[Verdict]:
    """One verdict per check over several windows (a stream's choices, artifacts, messages): hits and time add."""
    merged: dict[str, Verdict] = {}
    for g in guards:
        for v in g.verdicts():
            prev = merged.get(v.check)
            merged[v.check] = v if prev is None else Verdict(
                v.policy, v.check, v.type, v.action, v.stage, prev.hits + v.hits,
                prev.latency_ms + v.latency_ms, v.detail)
    return list(merged.values())
