"""Agents that do not speak A2A (Bedrock InvokeAgent, Vertex Agent Engine :query/:streamQuery) behind the same
A2A front: their `AgentBackend` is called, and its A2A v1.0 objects come back as what an A2A JSON-RPC upstream
would have answered (an `httpx.Response` holding a JSON-RPC envelope, or an SSE stream of them). Everything after
— the bridge to a 0.3 client, the HTTP+JSON framing, the task/usage notes, the request log — is then the same
path as for any A2A agent.

These backends keep no tasks the gateway could query: only SendMessage and SendStreamingMessage are offered
(the rest answer UnsupportedOperation before anything is admitted)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from ...errors import UpstreamTimeout
from .a2a.protocol import INVALID_PARAMS, UNSUPPORTED_OPERATION, V1, A2AError, RpcCall, result
from .a2a.upstream import Endpoint
from .domain import Agent, AgentBackend, InvocationContext
from .limits import within
from .wire import Message, StreamResponse, Task

METHODS = frozenset({"SendMessage", "SendStreamingMessage"})


def endpoint(agent: Agent) -> Endpoint:
    return Endpoint(id=agent.spec.source, url="", version=V1, priority=0, kind="backend")


def message_of(agent: Agent, call: RpcCall) -> Message:
    """The call's message, validated up front (a bad one is InvalidParams, never a 5xx after admission)."""
    if call.method not in METHODS:
        raise A2AError(UNSUPPORTED_OPERATION, f"{call.method} is not available for a {agent.spec.source} agent: "
                       "it keeps no tasks the gateway can query.")
    try:
        return Message.model_validate(call.params.get("message"))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise A2AError(INVALID_PARAMS, f"Invalid params: message.{where}: {first['msg']}") from None


class _Events(httpx.AsyncByteStream):
    """An SSE body of JSON-RPC envelopes, one per StreamResponse; closing it stops the backend's stream."""

    def __init__(self, events: AsyncIterator[StreamResponse], rid: Any) -> None:
        self._events, self._rid = events, rid

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for ev in self._events:
            yield b"data: " + orjson.dumps(result(self._rid, ev.dump())) + b"\n\n"

    async def aclose(self) -> None:
        closer = getattr(self._events, "aclose", None)
        if closer is not None:
            await closer()


async def call(backend: AgentBackend, agent: Agent, rpc: RpcCall, message: Message, context: InvocationContext,
               *, stream: bool, rid: Any, clock: Callable[[], float]) -> httpx.Response:
    """One attempt: the backend's answer as a JSON-RPC response (the task time limit covers the whole call)."""
    if stream:
        events = within(backend.stream_message(agent, message, context), clock() + context.timeout_seconds, clock)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(events, rid))
    try:
        answer = await asyncio.wait_for(backend.send_message(agent, message, context), context.timeout_seconds)
    except TimeoutError:
        raise UpstreamTimeout(f"Agent '{agent.id}' did not finish within its task time "
                              f"({context.timeout_seconds:g} s).", code="agent_task_timeout") from None
    body = {"task": answer.dump()} if isinstance(answer, Task) else {"message": answer.dump()}
    return httpx.Response(200, headers={"content-type": "application/json"},
                          content=orjson.dumps(result(rid, body)))
