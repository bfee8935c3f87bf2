"""JSON-RPC batches, answered per the revision the client negotiated.

Only 2025-03-26 has them: its schema defines `JSONRPCBatchRequest`/`JSONRPCBatchResponse`, its base protocol says
implementations MUST support receiving batches, and its lifecycle says `initialize` MUST NOT be part of one.
2025-06-18 removed batching (the POST body MUST be a single message) and nothing later brought it back, so for
any other revision — and for a batch sent with no session, since only a session names the revision — the array is
an Invalid Request, answered with one JSON-RPC error and HTTP 400.

Each request of an accepted batch is governed on its own, exactly like a single request (a `tools/call` runs the
whole pipeline and gets its own request-log row); the answers come back as one JSON array in request order.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from . import jsonrpc as rpc

BATCH_REVISIONS = frozenset({"2025-03-26"})
MAX_BATCH = 32  # a bound on the work one POST may ask for (each element may be a governed tool call)

Handle = Callable[[rpc.Message], Awaitable[dict[str, Any] | None]]


def is_batch(body: bytes) -> bool:
    """Cheap sniff before parsing: a JSON array body (leading whitespace allowed, as JSON allows)."""
    return body.lstrip(b" \t\r\n")[:1] == b"["


def allowed(version: str | None) -> bool:
    return version in BATCH_REVISIONS


def refusal(version: str | None) -> rpc.Fault:
    said = f"revision {version}" if version else "a request without a session"
    return rpc.Fault(rpc.INVALID_REQUEST, f"Invalid Request: JSON-RPC batches are not supported for {said} "
                                          "(only 2025-03-26 allows them).")


def load(body: bytes) -> list[Any] | rpc.Fault:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return rpc.Fault(rpc.PARSE_ERROR, "Parse error: the body is not valid JSON.")
    if not isinstance(data, list) or not data:  # JSON-RPC: an empty array is one Invalid Request
        return rpc.Fault(rpc.INVALID_REQUEST, "Invalid Request: an empty batch.")
    if len(data) > MAX_BATCH:
        return rpc.Fault(rpc.INVALID_REQUEST, f"Invalid Request: a batch holds at most {MAX_BATCH} messages.")
    return data


async def answer(items: list[Any], handle: Handle) -> list[dict[str, Any]]:
    """The batch response: one entry per request (or per malformed element), none for notifications/responses.
    `handle` answers one valid request; elements run concurrently, answers keep the batch's order."""

    async def one(item: Any) -> dict[str, Any] | None:
        parsed = rpc.parse_object(item)
        if isinstance(parsed, rpc.Fault):
            return parsed.body()
        if not parsed.is_request:
            return None
        if parsed.method == "initialize":
            return rpc.error(parsed.id, rpc.INVALID_REQUEST, "Invalid Request: initialize must not be part of "
                                                             "a JSON-RPC batch.")
        return await handle(parsed)

    replies = await asyncio.gather(*(one(i) for i in items))
    return [r for r in replies if r is not None]
