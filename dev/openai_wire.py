"""OpenAI wire shapes and the deterministic token rule, defined once for the demo upstream (dev/sample_upstream.py)
and the scriptable test fake (tests/support/fake_openai.py): the numbers a new user sees in `make run` are the
numbers the tests assert, because both build their bodies here.

Token rule: prompt_tokens = total characters of all message contents (text parts of multi-part content) // 4 + 1;
embeddings: characters of all input strings // 4 + 1, plus the number of ids of token-id inputs;
completion_tokens = the words of the reply unless a caller says otherwise.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any


def text_of(value: Any) -> str:
    """Text of a message content: a string, or the text parts of a multi-part list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else text_of(p) for p in value)
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    chars = sum(len(text_of(m.get("content"))) for m in messages if isinstance(m, dict)) \
        if isinstance(messages, list) else 0
    return chars // 4 + 1


def embedding_inputs(body: dict[str, Any]) -> list[Any]:
    raw = body.get("input", "")
    if isinstance(raw, list) and raw and not all(isinstance(x, int) for x in raw):
        return raw  # list of strings, or of token-id lists
    return [raw]


def embedding_tokens(inputs: list[Any]) -> int:
    strings = sum(len(x) for x in inputs if isinstance(x, str))
    ids = sum(len(x) for x in inputs if isinstance(x, list))
    return ids + strings // 4 + 1


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_usage(body: dict[str, Any], content: str, completion: int | None = None) -> dict[str, int]:
    return usage(prompt_tokens(body), completion if completion is not None else len(content.split()))


def words(content: str) -> list[str]:
    # Keep the whitespace on the pieces so the concatenated deltas equal the non-streamed content exactly.
    return re.findall(r"\S+\s*|\s+", content)


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def chat_completion(model: str, content: str, usage_: dict[str, int] | None, *, fingerprint: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    if usage_ is not None:
        out["usage"] = usage_
    out["system_fingerprint"] = fingerprint
    return out


def embeddings(model: str, vectors: list[list[float]], usage_: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"object": "list", "model": model, "data": [
        {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}
    if usage_ is not None:
        out["usage"] = {"prompt_tokens": usage_, "total_tokens": usage_}
    return out


def sse_events(model: str, content: str, usage_: dict[str, int] | None, *, fingerprint: str,
               extra: dict[str, Any] | None = None) -> list[bytes]:
    """A streamed chat completion: role chunk, one chunk per word, the stop chunk, the usage chunk when
    `usage_` (OpenAI then sends `usage: null` on every other chunk), and `[DONE]`."""
    cid, now = completion_id(), int(time.time())

    def chunk(choices: list[dict[str, Any]], **more: Any) -> bytes:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": model,
                               "system_fingerprint": fingerprint, "choices": choices}
        if usage_ is not None:
            obj["usage"] = None
        return b"data: " + json.dumps({**obj, **more, **(extra or {})}).encode() + b"\n\n"

    def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}]

    events = [chunk(delta({"role": "assistant", "content": ""}))]
    events += [chunk(delta({"content": w})) for w in words(content)]
    events.append(chunk(delta({}, "stop")))
    if usage_ is not None:
        events.append(chunk([], usage=usage_))
    events.append(b"data: [DONE]\n\n")
    return events


_ERRORS = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
           403: ("permission_error", None), 404: ("invalid_request_error", "not_found"),
           408: ("timeout", "timeout"), 429: ("requests", "rate_limit_exceeded"),
           503: ("server_error", "service_unavailable")}


def error_body(status: int, message: str | None = None, param: str | None = None) -> dict[str, Any]:
    kind, code = _ERRORS.get(status, ("invalid_request_error" if status < 500 else "server_error", None))
    return {"error": {"message": message or f"upstream error {status}", "type": kind, "code": code,
                      "param": param}}
