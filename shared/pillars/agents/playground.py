"""The developer's agent playground: send one message to an agent through the gateway's own A2A front (the same
directory, lifecycle, scope, quotas, failover and request log as any client call — with the developer's identity
instead of a virtual key) and see the reply, every task state the agent went through, and the governance trace.

Shaped like the tool playground (shared/pillars/tools/playground.py): a list of `TraceStep`s and `ok`. The message
is sent as SendStreamingMessage so the intermediate states are visible; an agent that answers with one JSON
object is relayed as one event by the agents spec, so every agent works."""
from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import Field
from starlette.responses import Response

from ...auth.principal import Principal
from ...domain.base import AppModel, Contract, Pillar
from ...errors import GatewayError
from ...flags.service import FlagService
from ...pipeline.exchange import Exchange
from ..tools.playground import TraceStep
from .a2a.protocol import V1, A2AError, RpcCall
from .domain import AgentDirectory, AgentId


class AgentPlaygroundCall(Contract):
    agent: AgentId
    text: str = Field(min_length=1, max_length=20_000)
    skill: str | None = Field(default=None, max_length=128, description="Sent as message metadata `skill` "
                                                                          "(composite routers match on it).")


class AgentPlaygroundResult(AppModel):
    ok: bool
    reply: str = ""
    task_id: str | None = None
    states: list[str] = Field(default_factory=list, description="Every task state seen, in order.")
    events: list[dict[str, Any]] = Field(default_factory=list, description="The A2A v1.0 stream events.")
    trace: list[TraceStep] = Field(default_factory=list)
    request_id: str = ""


Front = Callable[[Exchange], Awaitable[Response]]
MAX_EVENTS = 200


class AgentPlayground:
    def __init__(self, directory: AgentDirectory, flags: FlagService, front: Front) -> None:
        self._directory, self._flags, self._front = directory, flags, front

    async def run(self, developer: Principal, project_id: str, body: AgentPlaygroundCall) -> AgentPlaygroundResult:
        rid = f"pg-{uuid.uuid4().hex[:16]}"
        out = AgentPlaygroundResult(ok=False, request_id=rid)
        caller = developer.model_copy(update={"project_id": project_id, "key_id": None, "key_prefix": None,
                                              "scopes": {}})
        if not await self._governed(caller, project_id, body.agent, out):
            return out
        message: dict[str, Any] = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": body.text}]}
        if body.skill:
            message["metadata"] = {"skill": body.skill}
        x = Exchange(Pillar.agents, "SendStreamingMessage", caller, rid,
                     RpcCall(1, "SendStreamingMessage", {"message": message}, V1), {}, time.perf_counter(),
                     stream=True, resource=body.agent)
        x.scratch["body_bytes"] = len(orjson.dumps(message))
        sent = time.perf_counter()
        try:
            response = await self._front(x)
            await self._read(response, out)
        except (GatewayError, A2AError) as exc:
            code = getattr(exc, "code", "")
            out.trace.append(TraceStep(step="send", ok=False, detail=f"{code}: {exc.message}"[:500], ms=_ms(sent)))
            return out
        self._trace_call(x, out, sent)
        return out

    async def _governed(self, caller: Principal, project_id: str, agent_id: str, out: AgentPlaygroundResult) -> bool:
        started = time.perf_counter()
        try:
            caller.project = await self._flags.check(project_id, Pillar.agents)
        except GatewayError as exc:
            out.trace.append(TraceStep(step="pillar_flag", ok=False, detail=f"{exc.code}: {exc.message}"))
            return False
        out.trace.append(TraceStep(step="pillar_flag", ok=True, detail="agents pillar on for the project"))
        try:
            inv = await self._directory.resolve(project_id, agent_id, caller)
        except GatewayError as exc:
            out.trace.append(TraceStep(step="resolve", ok=False, detail=f"{exc.code}: {exc.message}"))
            return False
        a = inv.agent
        note = f"'{a.id}' ({a.spec.source}), {a.lifecycle}"
        if inv.headers:
            note += "; " + ", ".join(f"{k}: {v}" for k, v in inv.headers.items())
        out.trace.append(TraceStep(step="resolve", ok=True, detail=note, ms=_ms(started)))
        return True

    async def _read(self, response: Response, out: AgentPlaygroundResult) -> None:
        chunks = response.body_iterator if hasattr(response, "body_iterator") else _one(response.body)
        buffer = b""
        async for chunk in chunks:
            buffer += chunk if isinstance(chunk, bytes) else chunk.encode()
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                self._event(event, out)
        if buffer.strip():
            self._event(buffer, out)

    def _event(self, raw: bytes, out: AgentPlaygroundResult) -> None:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")) or raw.strip()
        try:
            envelope = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if len(out.events) < MAX_EVENTS:
            out.events.append(envelope)
        value = envelope.get("result") if isinstance(envelope, dict) else None
        if not isinstance(value, dict):
            err = envelope.get("error") if isinstance(envelope, dict) else None
            if isinstance(err, dict):
                out.trace.append(TraceStep(step="agent_error", ok=False, detail=str(err.get("message", ""))[:500]))
            return
        obj = value.get("task") or value.get("statusUpdate") or value.get("artifactUpdate") or value.get("message")
        if not isinstance(obj, dict):
            return
        out.task_id = out.task_id or obj.get("taskId") or (obj.get("id") if "status" in obj else None)
        status = obj.get("status")
        if isinstance(status, dict) and isinstance(status.get("state"), str):
            out.states.append(status["state"])
        parts = (obj.get("artifact") or {}).get("parts") if "artifact" in obj else obj.get("parts")
        if "task" in value:
            parts = [p for art in obj.get("artifacts") or [] for p in art.get("parts", [])] or None
        for p in parts or []:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                out.reply = p["text"]  # the last text the agent produced

    def _trace_call(self, x: Exchange, out: AgentPlaygroundResult, sent: float) -> None:
        if x.admission is not None:
            out.trace.append(TraceStep(step="admit", ok=True, detail=", ".join(
                f"{k}: {v}" for k, v in x.admission.headers.items()) or "no quota applies"))
        if x.outcome is not None:
            attempts = "; ".join(f"{a.target} → {a.status or a.error} in {a.ms:.1f} ms" for a in x.outcome.attempts)
            out.trace.append(TraceStep(step="route", ok=True, detail=f"target {x.outcome.target.id}: {attempts}",
                                       ms=round(x.overhead_ms, 2)))
        hops = _composite_hops(out.events)
        for h in hops:
            out.trace.append(TraceStep(step=f"hop {h.get('hop')}", ok=h.get("state") == "TASK_STATE_COMPLETED",
                                       detail=f"{h.get('agent')} ({h.get('why')}): {h.get('state')}",
                                       ms=float(h.get("ms", 0.0))))
        final = out.states[-1] if out.states else ""
        out.ok = final == "TASK_STATE_COMPLETED" or (not out.states and bool(out.reply))
        out.trace.append(TraceStep(step="answer", ok=out.ok, detail=f"{final or 'message'}; logged as request "
                                                                    f"{x.request_id}", ms=_ms(sent)))


def _composite_hops(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in reversed(events):
        value = e.get("result") if isinstance(e, dict) else None
        obj = (value.get("statusUpdate") or value.get("task")) if isinstance(value, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        hops = meta.get("gateway", {}).get("hops") if isinstance(meta, dict) else None
        if isinstance(hops, list):
            return [h for h in hops if isinstance(h, dict)]
    return []


async def _one(body: bytes):
    yield body


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
