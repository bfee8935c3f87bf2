"""A cached answer served in the shape the client asked for: a `chat.completion`, or a stream of
`chat.completion.chunk` events ending in `[DONE]` (with a usage chunk of zeros when the client asked for usage:
a hit spends no upstream tokens)."""
from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

from .entry import CachedAnswer

_CHUNK_CHARS = 64  # replayed in pieces so clients see a normal stream, without waiting


def completion(answer: CachedAnswer, request_id: str, model: str) -> dict:
    return {"id": f"chatcmpl-cache-{request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": answer.model or model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.content},
                         "finish_reason": answer.finish_reason}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def stream(answer: CachedAnswer, request_id: str, model: str, *, include_usage: bool) -> Iterator[bytes]:
    base = {"id": f"chatcmpl-cache-{request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": answer.model or model}

    def event(choices: list, **extra: object) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    text = answer.content
    for i in range(0, len(text), _CHUNK_CHARS):
        yield event([{"index": 0, "delta": {"content": text[i:i + _CHUNK_CHARS]}, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}])
    if include_usage:
        yield event([], usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    yield b"data: [DONE]\n\n"
