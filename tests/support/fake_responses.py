"""The Responses API shapes of the fake upstream (tests/support/fake_openai.py), written from OpenAI's API
reference: the `response` object (output message with `output_text` parts, `usage` with `input_tokens_details.
cached_tokens` and `output_tokens_details.reasoning_tokens`), the typed stream (`response.created`,
`response.in_progress`, `response.output_item.added`, `response.content_part.added`, one
`response.output_text.delta` per word, `response.output_text.done`, `response.content_part.done`,
`response.output_item.done`, `response.completed`; each `event: <type>` with a `sequence_number`, no `[DONE]`),
the deleted object and the input-items list.

Token rule (as dev/openai_wire.py for chat): input_tokens = characters of instructions + input text // 4 + 1,
output_tokens = words of the reply unless a behaviour says otherwise."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

from dev import openai_wire as wire


def input_text(body: dict[str, Any]) -> str:
    parts = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    inp = body.get("input")
    if isinstance(inp, str):
        parts.append(inp)
    for item in inp if isinstance(inp, list) else []:
        if isinstance(item, dict):
            parts.append(wire.text_of(item.get("content")))
    return "".join(parts)


def input_tokens(body: dict[str, Any]) -> int:
    return len(input_text(body)) // 4 + 1


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    inp = body.get("input")
    if isinstance(inp, str):
        inp = [{"role": "user", "content": inp}]
    out = []
    for item in inp if isinstance(inp, list) else []:
        if isinstance(item, dict):
            text = wire.text_of(item.get("content"))
            out.append({"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "status": "completed",
                        "role": item.get("role") or "user", "content": [{"type": "input_text", "text": text}]})
    return out


def usage(body: dict[str, Any], content: str, output: int | None = None, *, cached: int = 0,
          reasoning: int = 0) -> dict[str, Any]:
    inp, out = input_tokens(body), output if output is not None else len(content.split())
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": inp + out}


def message(content: str, *, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": content, "annotations": []}] if status == "completed" else []
    return {"id": item_id or "msg_" + uuid.uuid4().hex[:24], "type": "message", "status": status,
            "role": "assistant", "content": parts}


def response(model: str, body: dict[str, Any], content: str, usage_: dict[str, Any] | None, *,
             status: str = "completed", response_id: str | None = None, item_id: str | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": response_id or "resp_" + uuid.uuid4().hex, "object": "response", "created_at": int(time.time()),
        "status": status, "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model,
        "output": [message(content, item_id=item_id)] if status == "completed" else [],
        "parallel_tool_calls": True, "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
        "truncation": "disabled", "usage": usage_ if status == "completed" else None, "metadata": {}}
    return {**out, **(extra or {})}


def events(model: str, body: dict[str, Any], content: str, usage_: dict[str, Any] | None,
           response_id: str) -> list[bytes]:
    """The typed stream of one text answer, ending with `response.completed` (which carries the usage)."""
    item_id = "msg_" + uuid.uuid4().hex[:24]
    seq = iter(range(1_000_000))
    started = response(model, body, "", None, status="in_progress", response_id=response_id)
    done = response(model, body, content, usage_, response_id=response_id, item_id=item_id)
    ids = {"item_id": item_id, "output_index": 0, "content_index": 0}

    def event(kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

    out = [event("response.created", response=started), event("response.in_progress", response=started),
           event("response.output_item.added", output_index=0, item=message("", status="in_progress",
                                                                              item_id=item_id)),
           event("response.content_part.added", **ids, part={"type": "output_text", "text": "", "annotations": []})]
    out += [event("response.output_text.delta", **ids, delta=w, logprobs=[]) for w in wire.words(content)]
    out += [event("response.output_text.done", **ids, text=content, logprobs=[]),
            event("response.content_part.done", **ids, part={"type": "output_text", "text": content,
                                                              "annotations": []}),
            event("response.output_item.done", output_index=0, item=done["output"][0]),
            event("response.completed", response=done)]
    return out


def deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def item_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None, "has_more": False}
