"""The engine's pillar-neutral input: text segments with a role. Adapters extract them from a pillar's payload and
write rewritten (redacted) text back; here the OpenAI chat/embeddings shapes (the MCP and A2A pillars add theirs)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ROLES = {"user": "user", "system": "system", "developer": "system", "tool": "tool", "function": "tool",
          "assistant": "assistant"}


@dataclass(frozen=True)
class Segment:
    role: str  # user | system | tool | assistant
    text: str
    where: tuple[Any, ...]  # the adapter's address of the text in its payload


def chat_input(body: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    for i, msg in enumerate(body.get("messages") or []):
        if not isinstance(msg, dict):
            continue
        role = _ROLES.get(str(msg.get("role")), "user")  # an unknown role is scanned like user content
        content = msg.get("content")
        if isinstance(content, str):
            out.append(Segment(role, content, ("messages", i)))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    out.append(Segment(role, part["text"], ("messages", i, j)))
    inp = body.get("input")  # embeddings
    if isinstance(inp, str):
        out.append(Segment("user", inp, ("input",)))
    elif isinstance(inp, list):
        out += [Segment("user", s, ("input", k)) for k, s in enumerate(inp) if isinstance(s, str)]
    return out


def apply_chat_input(body: dict[str, Any], segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text == seg.text:
            continue
        w = seg.where
        if w[0] == "messages" and len(w) == 2:
            body["messages"][w[1]]["content"] = text
        elif w[0] == "messages":
            body["messages"][w[1]]["content"][w[2]]["text"] = text
        elif len(w) == 1:
            body["input"] = text
        else:
            body["input"][w[1]] = text


def chat_output(answer: dict[str, Any]) -> list[Segment]:
    out = []
    for i, choice in enumerate(answer.get("choices") or []):
        msg = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            out.append(Segment("assistant", msg["content"], ("choices", i)))
    return out


def apply_chat_output(answer: dict[str, Any], segments: list[Segment], texts: list[str]) -> None:
    for seg, text in zip(segments, texts):
        if text != seg.text:
            answer["choices"][seg.where[1]]["message"]["content"] = text
