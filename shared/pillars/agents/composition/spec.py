"""The composite agent on the governance pipeline: the same spec as any agent (directory, lifecycle, key scope,
message size, the answer bridged to the client's version, the request-log columns) except that its one target is
the gateway itself — `send` runs the composition and answers as an A2A v1.0 agent would (JSON-RPC body, or SSE).

The composite's own row logs the task (hops, budget use, stop reason) with tokens 0 on quotas: every hop already
settled its own tokens on (agents, member), and counting them again here would charge the project twice."""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import ValidationError

from ....pipeline.exchange import Exchange, Usage
from ..a2a.protocol import (INVALID_PARAMS, TASK_NOT_CANCELABLE, TASK_NOT_FOUND, UNSUPPORTED_OPERATION, V1, A2AError,
                            RpcCall, error, result)
from ..domain import Agent
from ..spec import AgentsSpec
from ..wire import Message, StreamResponse
from .budget import Budget
from .hops import Front, PipelineHops
from .runner import CompositeRun
from .tasks import TaskStore, owner_of


@dataclass(frozen=True, slots=True)
class GatewayTarget:
    """The composite's one failover Target: the gateway answers it (in A2A 1.0)."""

    id: str = "composite"
    version: str = V1
    binding: str = "jsonrpc"  # what the gateway's answer is shaped as (like an A2A Endpoint's interface)
    priority: int = 0
    weight: int = 1


TARGET = GatewayTarget()


class CompositeSpec(AgentsSpec):
    def __init__(self, *, front: Callable[[], Front], tasks: TaskStore,
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front, self._tasks, self._clock = front, tasks, clock

    async def resolve(self, x: Exchange) -> None:
        await super().resolve(x)  # lifecycle, key scope, message size; ListTasks is refused (no 1.0 upstream)
        x.targets = [TARGET]
        if x.request.method in ("SendMessage", "SendStreamingMessage"):  # refused before any quota is taken
            try:
                x.scratch["message"] = Message.model_validate(x.request.params.get("message"))
            except ValidationError:
                raise A2AError(INVALID_PARAMS, "Invalid params: `message` is not an A2A message.") from None

    async def send(self, x: Exchange, target: Any) -> httpx.Response:
        call: RpcCall = x.request
        if call.method == "SendMessage":
            run = self._run(x)
            async for _ in self._drive(x, run):
                pass
            return _answer(call.id, {"task": run.task.dump()})
        if call.method == "SendStreamingMessage":
            run = self._run(x)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(self._sse(x, run)))
        if call.method in ("GetTask", "CancelTask", "SubscribeToTask"):
            return await self._existing(x)
        return _answer(call.id, None, UNSUPPORTED_OPERATION, f"{call.method} is not supported by composite agents.")

    # ---- a new task

    def _run(self, x: Exchange) -> CompositeRun:
        agent: Agent = x.entity
        comp = agent.spec.composition
        assert comp is not None
        message: Message = x.scratch["message"]
        budget = x.scratch.get("budget")
        if isinstance(budget, Budget):  # a hop of an outer composite: one budget for the whole task
            x.scratch["budget_adopted"] = True
        else:
            budget = Budget(comp.budget, self._clock)
        hops = PipelineHops(self._front(), x.principal, agent.id, x.request_id)
        task_id, project = uuid.uuid4().hex, x.principal.project_id or ""

        async def canceled() -> bool:  # a stream's task can be canceled from any instance (tasks.py)
            return await self._tasks.is_canceled(project, task_id)

        return CompositeRun(agent.id, comp, message, hops, budget, correlation_id=x.request_id, task_id=task_id,
                            canceled=canceled if x.stream else None)

    async def _drive(self, x: Exchange, run: CompositeRun) -> AsyncIterator[StreamResponse]:
        """Run the task and store it when it ends (GetTask from any instance). A stream also stores it when it
        starts: its client learns the task id from the first event and may ask for it before the end; a plain
        SendMessage's client learns the id only with the answer, so one write is enough there."""
        project, owner = x.principal.project_id or "", owner_of(x.principal)
        stored = await self._tasks.save(project, run.agent_id, owner, run.task) if x.stream else None
        try:
            async for event in run.events():
                yield event
        finally:
            x.scratch["composite_run"] = run
            run.abandon()  # no-op once the task ended; a stream closed mid-task ends CANCELED, not WORKING forever
            await self._tasks.save(project, run.agent_id, owner, run.task, stored)

    async def _sse(self, x: Exchange, run: CompositeRun) -> AsyncIterator[bytes]:
        events = self._drive(x, run)
        try:
            async for event in events:
                yield b"data: " + orjson.dumps(result(x.request.id, event.dump())) + b"\n\n"
        finally:  # closed early (client gone): close the run now, not whenever the generator is collected
            await events.aclose()  # type: ignore[attr-defined]

    # ---- an existing task

    async def _existing(self, x: Exchange) -> httpx.Response:
        call: RpcCall = x.request
        task_id = call.params.get("id")
        project, owner = x.principal.project_id or "", owner_of(x.principal)
        if call.method == "CancelTask":
            task, canceled = await self._tasks.cancel(project, x.resource, owner, task_id)
            if task is None:
                return _answer(call.id, None, TASK_NOT_FOUND, "Task not found.")
            if not canceled:
                return _answer(call.id, None, TASK_NOT_CANCELABLE, f"The task already ended ({task.status.state}).")
            return _answer(call.id, task.dump())
        task = await self._tasks.get(project, x.resource, owner, task_id)
        if task is None:
            return _answer(call.id, None, TASK_NOT_FOUND, "Task not found.")
        if call.method == "GetTask":
            return _answer(call.id, task.dump())
        return _answer(call.id, None, UNSUPPORTED_OPERATION,
                       "Composite tasks cannot be resubscribed to; read them with GetTask.")

    def usage(self, x: Exchange) -> Usage:
        used = super().usage(x)
        run: CompositeRun | None = x.scratch.get("composite_run")
        if run is not None:
            used.attributes.update(composite_hops=len(run.hops), task_tokens=run.budget.tokens,
                                   task_tool_calls=run.budget.tool_calls, correlation_id=run.correlation_id)
            if run.reason is not None:
                used.attributes["stop_reason"] = str(run.reason.get("reason", ""))[:64]
                if "limit" in run.reason:
                    used.attributes["budget_limit"] = str(run.reason["limit"])[:32]
        used.attributes.pop("total_tokens", None)
        used.tokens = 0  # each hop settled its own tokens
        return used


class _Events(httpx.AsyncByteStream):
    """The run's SSE bytes as an httpx stream whose `aclose` closes the run too: when the client goes away, the
    relay closes the "upstream" response, and the run's `finally` stores the task as ended (not WORKING)."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._events:
            yield chunk

    async def aclose(self) -> None:
        await self._events.aclose()  # type: ignore[attr-defined]


def _answer(rid: Any, value: Any, code: int | None = None, message: str = "") -> httpx.Response:
    body = result(rid, value) if code is None else error(rid, code, message)
    return httpx.Response(200, headers={"content-type": "application/json"}, content=orjson.dumps(body))
