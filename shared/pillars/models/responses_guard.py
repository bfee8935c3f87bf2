"""Guardrails on the Responses API's shapes: the text segments of a request (`instructions`, `input` as a string
or as message items with text parts, tool outputs) and of an answer (`output[].content[]` `output_text` parts),
and the output checks on its typed stream — the same sliding window as chat (shared/guardrails/stream.py), per
(output item, content part). What the window held back and released is also what the `…done` events and the
final `response.completed` carry, so redacted or blocked text never leaves in a later event."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.guardrails.segments import Segment
from shared.guardrails.stream import GuardedSse, WindowGuard

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def responses_input(body: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    if isinstance(body.get("instructions"), str):
        out.append(Segment("system", body["instructions"], ("instructions",)))
    inp = body.get("input")
    if isinstance(inp, str):
        out.append(Segment("user", inp, ("input",)))
    for i, item in enumerate(inp if isinstance(inp, list) else []):
        if not isinstance(item, dict):
            continue
        role = _ROLES.get(str(item.get("role")), "user")  # unknown roles are scanned like user content
        content = item.get("content")
        if isinstance(content, str):
            out.append(Segment(role, content, ("input", i)))
        elif isinstance(content, list):
            out += [Segment(role, p["text"], ("input", i, j)) for j, p in enumerate(content)
                    if isinstance(p, dict) and isinstance(p.get("text"), str)]
        if isinstance(item.get("output"), str):  # function_call_output: tool content
            out.append(Segment("tool", item["output"], ("input", i, "output")))
    return out


def apply_responses_input(body: dict[str, Any], segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text == seg.text:
            continue
        w = seg.where
        if len(w) == 1:
            body[w[0]] = text
        elif len(w) == 2:
            body["input"][w[1]]["content"] = text
        elif w[2] == "output":
            body["input"][w[1]]["output"] = text
        else:
            body["input"][w[1]]["content"][w[2]]["text"] = text


def responses_output(answer: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    for i, item in enumerate(answer.get("output") or []):
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                out.append(Segment("assistant", part["text"], ("output", i, j)))
    return out


def apply_responses_output(answer: dict[str, Any], segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text != seg.text:
            answer["output"][seg.where[1]]["content"][seg.where[2]]["text"] = text


@dataclass
class GuardedResponsesSse(GuardedSse):
    """Rewrites complete typed SSE events of a Responses API stream (the output of ResponsesSseRelay.feed); its
    window guards are keyed by (output index, content index) instead of a choice index."""

    shown: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # released text per part

    def events(self, data: bytes) -> bytes:
        return b"".join(self._event(e) for e in data.split(b"\n\n") if e.strip())

    def _release(self, at: tuple[int, int], text: str, *, final: bool) -> str:
        guards: dict[Any, WindowGuard] = self.guards
        guard = guards.get(at) or guards.setdefault(at, WindowGuard(self.checks))
        out = guard.feed(text) + (guard.flush() if final else "")
        self.shown.setdefault(at, []).append(out)
        self.released.append(out)
        return out

    def _text(self, at: tuple[int, int]) -> str:
        return "".join(self.shown.get(at, []))

    def _event(self, event: bytes) -> bytes:
        lines = event.split(b"\n")
        data = b"".join(line[5:].lstrip() for line in lines if line.startswith(b"data:"))
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            return event + b"\n\n"
        kind, at = obj.get("type"), (_int(obj.get("output_index")), _int(obj.get("content_index")))
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            obj["delta"] = self._release(at, obj["delta"], final=False)
        elif kind == "response.output_text.done":
            rest = self._release(at, "", final=True)
            obj["text"] = self._text(at)
            if rest:  # what the window still held goes out as one more delta, just before `done`
                delta = {**obj, "type": "response.output_text.delta", "delta": rest}
                delta.pop("text", None)
                return _sse("response.output_text.delta", delta) + _sse(kind, obj)
        elif kind == "response.content_part.done" and isinstance(obj.get("part"), dict) and at in self.shown:
            obj["part"]["text"] = self._text(at)
        elif kind == "response.output_item.done" and isinstance(obj.get("item"), dict):
            self._rewrite_item(at[0], obj["item"])
        elif isinstance(obj.get("response"), dict):  # created / in_progress / completed / incomplete / failed
            for i, item in enumerate(obj["response"].get("output") or []):
                self._rewrite_item(i, item)
        else:
            return event + b"\n\n"
        return _sse(str(kind), obj)

    def _rewrite_item(self, index: int, item: Any) -> None:
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "output_text":
                part["text"] = self._text((index, j))  # only what the window released, never the upstream's


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sse(kind: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"
