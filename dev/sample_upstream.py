"""The demo model behind `make run`: a tiny, deterministic OpenAI-compatible server.

    python -m dev.sample_upstream --port 9100

It is what a new user's first governed call reaches, so it answers like a real model would in shape (usage,
SSE streaming, embeddings, OpenAI-style errors) but with predictable content: "You said: <last user message>".
Token counts follow the same rule as the test fake (tests/support/fake_openai.py) so numbers seen in the demo
match the tests: prompt_tokens = total characters of all message contents // 4 + 1 (embeddings: of all input
strings), completion_tokens = words in the reply.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CHAT_MODEL, EMBED_MODEL, DIMENSIONS, MAX_REPLY = "sample-chat", "sample-embed", 16, 200


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def _text(content: Any) -> str:
    """A message's text: a plain string, or the text parts of multi-part content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def count_tokens(texts: list[str]) -> int:
    return sum(len(t) for t in texts) // 4 + 1


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    return body if isinstance(body, dict) else _error(400, "The request body must be a JSON object.")


def reply_for(messages: list[dict[str, Any]]) -> str:
    last = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last}"[:MAX_REPLY]


async def chat(request: Request) -> Response:
    body = await _json_object(request)
    if isinstance(body, JSONResponse):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return _error(400, "'messages' must be a non-empty array of message objects.", "messages")
    model = str(body.get("model") or CHAT_MODEL)
    reply = reply_for(messages)
    prompt = count_tokens([_text(m.get("content")) for m in messages])
    completion = len(reply.split())
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    cid, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
    if body.get("stream") is True:
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        return StreamingResponse(_sse(cid, created, model, reply, usage if include_usage else None),
                                 media_type="text/event-stream", headers={"cache-control": "no-cache"})
    return JSONResponse({
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": usage, "system_fingerprint": "fp_sample"})


async def _sse(cid: str, created: int, model: str, reply: str,
               usage: dict[str, int] | None) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **more: Any) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": "fp_sample", "choices": choices, **more}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def delta(d: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "finish_reason": finish}]

    yield chunk(delta({"role": "assistant", "content": ""}))
    # Whitespace stays on each piece so the joined deltas equal the non-streamed reply exactly.
    for word in re.findall(r"\S+\s*|\s+", reply):
        await asyncio.sleep(0.02)  # visibly word by word in a terminal demo, still fast
        yield chunk(delta({"content": word}))
    yield chunk(delta({}, "stop"))
    if usage is not None:
        yield chunk([], usage=usage)
    yield b"data: [DONE]\n\n"


def embed(text: str) -> list[float]:
    """A unit vector derived from the text's hash: same text, same vector, across runs and machines."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:DIMENSIONS]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


async def embeddings(request: Request) -> Response:
    body = await _json_object(request)
    if isinstance(body, JSONResponse):
        return body
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
        return _error(400, "'input' must be a string or a non-empty array of strings.", "input")
    tokens = count_tokens(inputs)
    return JSONResponse({
        "object": "list", "model": str(body.get("model") or EMBED_MODEL),
        "data": [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(inputs)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def models(_request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "sample"} for m in (CHAT_MODEL, EMBED_MODEL)]})


async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", models, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
])


def main(argv: list[str] | None = None) -> None:
    import uvicorn  # only needed when run as a server, not when `app` is imported

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
