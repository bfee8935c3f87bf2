"""Bedrock agents as an AgentBackend: A2A SendMessage / SendStreamingMessage ↔ bedrock-agent-runtime InvokeAgent.

InvokeAgent answers with an event stream (application/vnd.amazon.eventstream): `chunk` events carry bytes of the
answer, `trace` events the agent's reasoning (and token usage), `returnControl` asks the caller to run an action
and send the results back. The mapping:
- A2A contextId ↔ Bedrock sessionId (a new one when the client sends none);
- chunks → parts of one artifact (streamed as artifactUpdate events, appended);
- returnControl → TASK_STATE_INPUT_REQUIRED with the request as a data part; the client answers with a data part
  `{"invocationId": …, "returnControlInvocationResults": […]}`, sent back as the session state;
- an exception event or a failed call → TASK_STATE_FAILED (streaming) or a 502 (send).
boto3 is blocking: the stream is read in a worker thread and handed to the event loop through a bounded queue.
"""
from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ....errors import DependencyUnavailable
from ....routing.failover import UpstreamUnavailable
from ..domain import Agent, InvocationContext
from .bedrock import _error_code as _code
from ..wire import (Artifact, Message, Part, StreamResponse, Task, TaskArtifactUpdateEvent, TaskStatus,
                    TaskStatusUpdateEvent)

_SESSION = re.compile(r"^[0-9a-zA-Z._:-]{2,100}$")
_EXCEPTION_EVENTS = ("accessDeniedException", "badGatewayException", "conflictException",
                     "dependencyFailedException", "internalServerException", "modelNotReadyException",
                     "resourceNotFoundException", "serviceQuotaExceededException", "throttlingException",
                     "validationException")
_DONE = object()


def session_id(context: InvocationContext, message: Message) -> str:
    ctx = context.context_id or message.context_id
    return ctx if ctx and _SESSION.match(ctx) else uuid.uuid4().hex


def invoke_request(agent: Agent, message: Message, session: str) -> dict[str, Any]:
    ref = agent.spec.bedrock
    if ref is None or ref.alias_id is None:
        raise DependencyUnavailable(f"Agent '{agent.id}' has no Bedrock alias to invoke yet.",
                                    code="agent_misconfigured")
    req: dict[str, Any] = {"agentId": ref.agent_id, "agentAliasId": ref.alias_id, "sessionId": session,
                           "enableTrace": True}
    results = next((p.data for p in message.parts if isinstance(p.data, dict)
                    and "returnControlInvocationResults" in p.data), None)
    if results is not None:  # the answer to a returnControl: no new text, the results go back as session state
        req["sessionState"] = {"invocationId": str(results.get("invocationId", "")),
                               "returnControlInvocationResults": results["returnControlInvocationResults"]}
    else:
        req["inputText"] = message.text()
    return req


def _usage(trace: dict[str, Any], into: dict[str, int]) -> None:
    """Token usage Bedrock reports inside orchestration traces (modelInvocationOutput.metadata.usage)."""
    for step in (trace.get("trace") or {}).values():
        usage = ((step or {}).get("modelInvocationOutput") or {}).get("metadata", {}).get("usage") \
            if isinstance(step, dict) else None
        if isinstance(usage, dict):
            into["input_tokens"] = into.get("input_tokens", 0) + int(usage.get("inputTokens") or 0)
            into["output_tokens"] = into.get("output_tokens", 0) + int(usage.get("outputTokens") or 0)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


class BedrockBackend:
    def __init__(self, client_for: Callable[[Agent], Any], *, queue_size: int = 64) -> None:
        self._client_for = client_for  # agent → boto3 bedrock-agent-runtime client
        self._queue_size = queue_size

    def _events(self, agent: Agent, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            response = self._client_for(agent).invoke_agent(**request)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError, endpoint and credential errors
            raise UpstreamUnavailable(f"Bedrock InvokeAgent failed: {_code(exc)}.",
                                      details={"agent": agent.id, "reason": _code(exc)}) from None
        try:
            yield from response["completion"]
        except Exception as exc:  # noqa: BLE001 - an exception event mid-stream (EventStreamError) or a broken read
            raise UpstreamUnavailable(f"Bedrock agent failed: {_code(exc)}.",
                                      details={"agent": agent.id, "reason": _code(exc)}) from None

    async def _pump(self, agent: Agent, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The blocking event stream, read in a thread; bounded, so a slow client slows the reader down."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue(self._queue_size)
        stop = False

        def reader() -> None:
            try:
                for event in self._events(agent, request):
                    if stop:
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(event), loop).result()
                asyncio.run_coroutine_threadsafe(queue.put(_DONE), loop).result()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()

        worker = asyncio.ensure_future(asyncio.to_thread(reader))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop = True
            while not queue.empty():  # unblock a reader waiting on a full queue
                queue.get_nowait()
            if not worker.done():
                worker.cancel()

    async def send_message(self, agent: Agent, message: Message, context: InvocationContext) -> Task:
        session = session_id(context, message)
        task_id = context.task_id or message.task_id or uuid.uuid4().hex
        request = invoke_request(agent, message, session)
        text: list[str] = []
        state, status_message = "TASK_STATE_COMPLETED", None
        async for event in self._pump(agent, request):
            kind, body = next(iter(event.items()))
            if kind == "chunk":
                text.append(body.get("bytes", b"").decode("utf-8", "replace"))
            elif kind == "trace":
                _usage(body, context.usage)
            elif kind == "returnControl":
                state = "TASK_STATE_INPUT_REQUIRED"
                status_message = _control_message(body, session, task_id)
            elif kind in _EXCEPTION_EVENTS:
                raise UpstreamUnavailable(f"Bedrock agent failed: {kind}.", details={"agent": agent.id,
                                                                                     "reason": kind})
        artifacts = [Artifact(artifact_id=f"{task_id}-0", parts=[Part(text="".join(text))])] if text else None
        return Task(id=task_id, context_id=session, artifacts=artifacts,
                    status=TaskStatus(state=state, message=status_message))

    async def stream_message(self, agent: Agent, message: Message,
                             context: InvocationContext) -> AsyncIterator[StreamResponse]:
        session = session_id(context, message)
        task_id = context.task_id or message.task_id or uuid.uuid4().hex
        request = invoke_request(agent, message, session)
        yield StreamResponse(task=Task(id=task_id, context_id=session, status=TaskStatus(state="TASK_STATE_WORKING")))
        n, final = 0, TaskStatus(state="TASK_STATE_COMPLETED")
        try:
            async for event in self._pump(agent, request):
                kind, body = next(iter(event.items()))
                if kind == "chunk":
                    part = Part(text=body.get("bytes", b"").decode("utf-8", "replace"))
                    yield StreamResponse(artifact_update=TaskArtifactUpdateEvent(
                        task_id=task_id, context_id=session, append=n > 0,
                        artifact=Artifact(artifact_id=f"{task_id}-0", parts=[part])))
                    n += 1
                elif kind == "trace":
                    _usage(body, context.usage)
                elif kind == "returnControl":
                    final = TaskStatus(state="TASK_STATE_INPUT_REQUIRED",
                                       message=_control_message(body, session, task_id))
                elif kind in _EXCEPTION_EVENTS:
                    final = _failed(f"Bedrock agent failed: {kind}.", session, task_id)
                    break
        except UpstreamUnavailable as exc:
            final = _failed(exc.message, session, task_id)
        yield StreamResponse(status_update=TaskStatusUpdateEvent(task_id=task_id, context_id=session, status=final))


def _failed(text: str, session: str, task_id: str) -> TaskStatus:
    return TaskStatus(state="TASK_STATE_FAILED", message=Message(
        message_id=uuid.uuid4().hex, role="ROLE_AGENT", parts=[Part(text=text)], context_id=session,
        task_id=task_id))


def _control_message(body: dict[str, Any], session: str, task_id: str) -> Message:
    return Message(message_id=uuid.uuid4().hex, role="ROLE_AGENT", context_id=session, task_id=task_id,
                   parts=[Part(data={"returnControl": _json_safe(body)}, media_type="application/json")])
