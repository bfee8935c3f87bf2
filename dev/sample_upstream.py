"""The demo model behind `make run`: a tiny, deterministic OpenAI-compatible server.

    python -m dev.sample_upstream --port 9100

It is what a new user's first governed call reaches, so it answers like a real model would in shape (usage,
SSE streaming, embeddings, OpenAI-style errors) but with predictable content: "You said: <last user message>".
Token counts and body shapes come from dev/openai_wire.py, which the test fake (tests/support/fake_openai.py)
uses too, so numbers seen in the demo are the tests' numbers: prompt_tokens = total characters of all message
contents // 4 + 1 (embeddings: of all input strings), completion_tokens = words in the reply.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dev import openai_wire as wire

CHAT_MODEL, EMBED_MODEL, DIMENSIONS, MAX_REPLY = "sample-chat", "sample-embed", 16, 200


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(wire.error_body(status, message, param), status)


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    return body if isinstance(body, dict) else _error(400, "The request body must be a JSON object.")


def reply_for(messages: list[dict[str, Any]]) -> str:
    last = next((wire.text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
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
    usage = wire.chat_usage(body, reply)
    if body.get("stream") is True:
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        events = wire.sse_events(model, reply, usage if include_usage else None, fingerprint="fp_sample")
        return StreamingResponse(_paced(events), media_type="text/event-stream", headers={"cache-control": "no-cache"})
    return JSONResponse(wire.chat_completion(model, reply, usage, fingerprint="fp_sample"))


async def _paced(events: list[bytes]) -> AsyncIterator[bytes]:
    for i, event in enumerate(events):
        if 0 < i < len(events) - 2:
            await asyncio.sleep(0.02)  # visibly word by word in a terminal demo, still fast
        yield event


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
    return JSONResponse(wire.embeddings(str(body.get("model") or EMBED_MODEL), [embed(t) for t in inputs],
                                        wire.embedding_tokens(inputs)))


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
