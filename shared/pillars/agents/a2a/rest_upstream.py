"""Calling an upstream that speaks only the A2A 1.0 HTTP+JSON binding (a Vertex-hosted A2A agent, any REST-only
agent): the v1.0 method as a REST request, and its answer back as the JSON-RPC envelope the rest of the gateway
works with (so bridging, framing for the client's binding, task notes and the request log stay one path).

A REST error the agent answers on purpose (4xx with a `google.rpc.Status`, e.g. 404 TASK_NOT_FOUND) becomes the
JSON-RPC error of its reason; 408/429/5xx stay HTTP errors, so failover and breakers see them as upstream
failures. SSE events are re-framed one by one; an `event: error` becomes a JSON-RPC error event."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from .protocol import INTERNAL_ERROR, error, result
from .rest import _BY_CODE

_CODE_OF_REASON = {reason: code for code, (_, _, reason) in _BY_CODE.items()}
_RETRYABLE = {408, 429}


def request(method: str, params: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
    """(HTTP method, path, JSON body, query) of a v1.0 call on the HTTP+JSON binding."""
    task = quote(str(params.get("id", "")), safe="")
    if method == "SendMessage":
        return "POST", "/message:send", params, {}
    if method == "SendStreamingMessage":
        return "POST", "/message:stream", params, {}
    if method == "GetTask":
        query = {"historyLength": str(params["historyLength"])} if "historyLength" in params else {}
        return "GET", f"/tasks/{task}", None, query
    if method == "CancelTask":
        return "POST", f"/tasks/{task}:cancel", params, {}
    if method == "SubscribeToTask":
        return "POST", f"/tasks/{task}:subscribe", None, {}
    if method == "ListTasks":
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items()
                 if isinstance(v, (str, int, bool))}
        return "GET", "/tasks", None, query
    raise LookupError(method)


def status_error(rid: Any, body: Any, status: int) -> dict[str, Any]:
    """A REST error payload (`{"error": {"message", "details": [ErrorInfo]}}`) as a JSON-RPC error."""
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    details = err.get("details") if isinstance(err.get("details"), list) else []
    reason = next((d.get("reason") for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str)),
                  None)
    code = _CODE_OF_REASON.get(reason or "", INTERNAL_ERROR)
    return error(rid, code, str(err.get("message") or f"HTTP {status}")[:2000])


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def answer(upstream: httpx.Response, rid: Any) -> httpx.Response:
    """A read unary REST answer → a JSON-RPC-shaped response (408/429/5xx and non-JSON are left as they are)."""
    status = upstream.status_code
    if status >= 500 or status in _RETRYABLE:
        return upstream
    body = _json(upstream.content)
    envelope = result(rid, body) if status < 300 else status_error(rid, body, status)
    return httpx.Response(200, headers={"content-type": "application/json"}, content=orjson.dumps(envelope))


class _Events(httpx.AsyncByteStream):
    def __init__(self, upstream: httpx.Response, rid: Any) -> None:
        self._upstream, self._rid = upstream, rid

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for kind, data in events(self._upstream):
            body = _json(data)
            envelope = status_error(self._rid, body, 500) if kind == "error" else result(self._rid, body)
            yield b"data: " + orjson.dumps(envelope) + b"\n\n"

    async def aclose(self) -> None:
        await self._upstream.aclose()


def stream(upstream: httpx.Response, rid: Any) -> httpx.Response:
    """An open SSE answer of the REST binding → an SSE stream of JSON-RPC envelopes (closing it closes the
    upstream)."""
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(upstream, rid))


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, bytes]]:
    """(event type, data) of each server-sent event."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            raw, buffer = buffer.split(b"\n\n", 1)
            if parsed := _event(raw):
                yield parsed
    if parsed := _event(buffer):
        yield parsed


def _event(raw: bytes) -> tuple[str, bytes] | None:
    kind, data = "message", []
    for line in raw.split(b"\n"):
        if line.startswith(b"event:"):
            kind = line[6:].strip().decode("utf-8", "replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    return (kind, b"\n".join(data)) if data else None
