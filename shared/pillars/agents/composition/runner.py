"""Running one composite task: pick the hops (sequential or router), call each member through a `HopCaller`,
charge the task's budget, and describe everything as A2A v1.0 stream events (the non-streaming answer is the
last task state of the same run, so both paths share one code path).

Outcomes are stable: TASK_STATE_COMPLETED with the last member's output as the `answer` artifact; or
TASK_STATE_FAILED with `metadata.gateway.reason` one of `budget_exhausted` (+ `limit`), `member_refused` (the
gateway refused the hop: lifecycle, scope, quota), `member_failed` (the member answered an error or a
non-completed task); a stream whose client went away ends TASK_STATE_CANCELED (`client_closed`) — the outputs of the hops that completed are kept as `partial` artifacts."""
from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..wire import (TERMINAL_STATES, Artifact, Message, Part, StreamResponse, Task, TaskArtifactUpdateEvent,
                    TaskStatus, TaskStatusUpdateEvent)
from .budget import Budget, BudgetExhausted
from .contracts import Composition


@dataclass
class HopResult:
    """What one member call gave: its final state and output parts, and what it reported using."""

    state: str  # a TASK_STATE_*, or "refused" / "error" when there was no task
    parts: list[Part] = field(default_factory=list)
    tokens: int = 0
    tool_calls: int = 0
    ms: float = 0.0
    code: str = ""  # refusal or error code
    message: str = ""
    task_id: str = ""
    charged: bool = False  # a nested composite already charged the shared budget itself
    inner_reason: dict[str, Any] | None = None  # a nested composite's stop reason


# (member id, input message, hop number, budget) → the hop's result; raises nothing but CancelledError.
HopCaller = Callable[[str, Message, int, Budget], Awaitable[HopResult]]

COMPLETED, FAILED, WORKING = "TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_WORKING"
MAX_OUTPUT_CHARS = 200_000  # what a hop's output may carry into the next hop / the stored task


def route(comp: Composition, message: Message) -> tuple[str, str]:
    """Router: the member the first matching rule names, else the default; and why (for the trace)."""
    meta = message.metadata or {}
    asked = meta.get("skill") if isinstance(meta.get("skill"), str) else None
    text = message.text()
    for n, rule in enumerate(comp.rules):
        if asked is not None and asked in rule.skills:
            return rule.agent, f"rule {n}: skill '{asked}'"
        for kw in rule.keywords:
            if re.search(rf"(?<!\w){re.escape(kw)}(?!\w)", text, re.IGNORECASE):
                return rule.agent, f"rule {n}: keyword '{kw}'"
    assert comp.default is not None
    return comp.default, "default"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _clip(parts: list[Part]) -> list[Part]:
    out, left = [], MAX_OUTPUT_CHARS
    for p in parts:
        if p.text is not None:
            if left <= 0:
                break
            p = p.model_copy(update={"text": p.text[:left]})
            left -= len(p.text or "")
        out.append(p)
    return out[:64]


class CompositeRun:
    """One task of one composite agent. `events()` runs it; `task` is its latest state (final once drained)."""

    def __init__(self, agent_id: str, comp: Composition, message: Message, call: HopCaller, budget: Budget, *,
                 correlation_id: str, task_id: str | None = None,
                 canceled: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.agent_id, self.comp, self.message, self._call, self.budget = agent_id, comp, message, call, budget
        self._canceled = canceled  # read before each hop: CancelTask from any instance stops the task there
        self.correlation_id = correlation_id
        self.hops: list[dict[str, Any]] = []
        self.reason: dict[str, Any] | None = None
        tid, ctx = task_id or uuid.uuid4().hex, message.context_id or uuid.uuid4().hex
        user = message.model_copy(update={"task_id": tid, "context_id": ctx})
        self.task = Task(id=tid, context_id=ctx, history=[user],
                         status=TaskStatus(state="TASK_STATE_SUBMITTED", timestamp=_now()))

    # ---- events

    def _status(self, state: str, text: str | None = None) -> StreamResponse:
        msg = None if text is None else Message(message_id=uuid.uuid4().hex, role="ROLE_AGENT",
                                                parts=[Part(text=text)], task_id=self.task.id,
                                                context_id=self.task.context_id)
        self.task.status = TaskStatus(state=state, message=msg, timestamp=_now())  # type: ignore[arg-type]
        self.task.metadata = self._metadata()
        return StreamResponse(status_update=TaskStatusUpdateEvent(
            task_id=self.task.id, context_id=self.task.context_id, status=self.task.status,
            metadata=self.task.metadata))

    def _artifact(self, artifact: Artifact) -> StreamResponse:
        self.task.artifacts = [*(self.task.artifacts or []), artifact]
        return StreamResponse(artifact_update=TaskArtifactUpdateEvent(
            task_id=self.task.id, context_id=self.task.context_id, artifact=artifact, last_chunk=True))

    def _metadata(self) -> dict[str, Any]:
        gateway: dict[str, Any] = {"composite": self.agent_id, "mode": self.comp.mode,
                                   "correlationId": self.correlation_id, "hops": self.hops,
                                   "budget": self.budget.report()}
        if self.reason is not None:
            gateway.update(self.reason)
        return {"gateway": gateway, "usage": {"totalTokens": self.budget.tokens,
                                              "toolCalls": self.budget.tool_calls}}

    # ---- the run

    def plan(self) -> list[tuple[str, str]]:
        if self.comp.mode == "router":
            return [route(self.comp, self.message)]
        return [(m, f"step {n + 1} of {len(self.comp.members)}") for n, m in enumerate(self.comp.members)]

    async def events(self) -> AsyncIterator[StreamResponse]:
        yield StreamResponse(task=self.task.model_copy())
        yield self._status(WORKING)
        parts = self.message.parts
        partial: list[Artifact] = []
        for member, why in self.plan():
            if self._canceled is not None and await self._canceled():
                self.reason = {"reason": "canceled", "detail": "canceled by the caller (CancelTask)"}
                yield self._status("TASK_STATE_CANCELED", f"Composite agent '{self.agent_id}' stopped: canceled")
                return
            try:
                result = await self._hop(member, why, parts)
            except BudgetExhausted as exc:
                if exc.partial is not None:
                    partial.append(Artifact(artifact_id=f"hop-{len(self.hops)}", name=f"partial:{exc.partial[0]}",
                                            parts=exc.partial[1]))
                async for e in self._fail(partial, {"reason": "budget_exhausted", "limit": exc.limit,
                                                    "detail": str(exc)}):
                    yield e
                return
            if result is None:
                async for e in self._fail(partial, self.reason or {}):
                    yield e
                return
            parts = result
            partial.append(Artifact(artifact_id=f"hop-{len(self.hops)}", name=f"partial:{member}", parts=parts))
            yield self._status(WORKING, f"{member} completed ({why})")
        yield self._artifact(Artifact(artifact_id="answer", name="answer", parts=parts))
        yield self._status(COMPLETED)

    async def _hop(self, member: str, why: str, parts: list[Part]) -> list[Part] | None:
        """One member call; its output parts, or None when the task must stop (self.reason says why)."""
        self.budget.begin_hop()
        n = self.budget.hops
        msg = Message(message_id=uuid.uuid4().hex, role="ROLE_USER", parts=_clip(parts),
                      metadata=self.message.metadata if not self.hops else None)
        try:
            async with asyncio.timeout(max(0.001, self.budget.remaining_seconds())):
                result = await self._call(member, msg, n, self.budget)
        except TimeoutError:
            self.hops.append({"hop": n, "agent": member, "why": why, "state": "timeout"})
            raise BudgetExhausted("time", round(self.budget.limits.max_seconds, 3),
                                  self.budget.limits.max_seconds) from None
        self.hops.append({"hop": n, "agent": member, "why": why, "state": result.state, "ms": round(result.ms, 2),
                          "tokens": result.tokens, "toolCalls": result.tool_calls,
                          **({"code": result.code} if result.code else {}),
                          **({"taskId": result.task_id} if result.task_id else {})})
        if result.inner_reason is not None and result.inner_reason.get("reason") == "budget_exhausted":
            raise _Propagated(result.inner_reason)
        if not result.charged:
            try:
                self.budget.charge(result.tokens, result.tool_calls)
            except BudgetExhausted as exc:  # the hop ran (and spent): its output is reported with the partial ones
                if result.state == COMPLETED:
                    exc.partial = (member, _clip(result.parts))
                raise
        if result.state == "refused":
            self.reason = {"reason": "member_refused", "agent": member, "code": result.code,
                           "detail": result.message[:500]}
            return None
        if result.state != COMPLETED:
            self.reason = {"reason": "member_failed", "agent": member, "state": result.state,
                           "code": result.code, "detail": result.message[:500]}
            return None
        return _clip(result.parts)

    def abandon(self) -> None:
        """The stream's client went away mid-task: the run was cancelled with it. The stored task must not stay
        WORKING forever: it ends CANCELED with reason `client_closed`."""
        if self.task.status.state in TERMINAL_STATES:
            return
        self.reason = {"reason": "client_closed", "detail": "the caller closed the stream before the task ended"}
        self._status("TASK_STATE_CANCELED", f"Composite agent '{self.agent_id}' stopped: client_closed")

    async def _fail(self, partial: list[Artifact], reason: dict[str, Any]) -> AsyncIterator[StreamResponse]:
        self.reason = reason
        for artifact in partial:
            yield self._artifact(artifact)
        text = f"Composite agent '{self.agent_id}' stopped: {reason.get('reason')}"
        if reason.get("detail"):
            text += f" — {reason['detail']}"
        yield self._status(FAILED, text)


class _Propagated(BudgetExhausted):
    """A nested composite ran out of the shared budget: the outer task stops for the same reason."""

    def __init__(self, inner: dict[str, Any]) -> None:
        super().__init__(str(inner.get("limit", "hops")), 0, 0)
        self.args = (str(inner.get("detail", "budget exhausted"))[:500],)
