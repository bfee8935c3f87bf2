"""Each hop of a composite task is an ordinary governed A2A call: `SendMessage` to the member through the same
front as any client call (directory: lifecycle and the caller's key scope — a composite never widens what a key
may call; quotas on (agents, member); failover and breakers; one request-log row). Every hop's row carries the
composite task's correlation id as its request id, plus `composite`, `hop` and `correlation_id` columns."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response

from ....auth.principal import Principal
from ....domain.base import Pillar
from ....errors import GatewayError
from ....pipeline.exchange import Exchange
from ..a2a.protocol import V1, A2AError, RpcCall
from ..wire import Message, Part
from .budget import Budget
from .runner import COMPLETED, HopResult

Front = Callable[[Exchange], Awaitable[Response]]


class PipelineHops:
    """The HopCaller of a task: who calls (the caller's principal) and under which correlation id."""

    def __init__(self, front: Front, principal: Principal, composite: str, correlation_id: str) -> None:
        self._front, self._principal = front, principal
        self._composite, self._correlation = composite, correlation_id

    async def __call__(self, member: str, message: Message, hop: int, budget: Budget) -> HopResult:
        body = {"message": message.dump()}
        rpc = RpcCall(f"hop-{hop}", "SendMessage", body, V1)
        x = Exchange(Pillar.agents, "SendMessage", self._principal, self._correlation, rpc, {}, time.perf_counter(),
                     resource=member)
        x.scratch["body_bytes"] = len(orjson.dumps(body))
        x.scratch["budget"] = budget  # a nested composite shares this task's budget
        x.attributes.update(composite=self._composite, hop=hop, correlation_id=self._correlation)
        started = time.perf_counter()
        try:
            response = await self._front(x)
        except GatewayError as exc:
            return HopResult("refused", code=exc.code, message=exc.message, ms=_ms(started))
        except A2AError as exc:  # the member refused the call in protocol terms (bad params, unsupported)
            return HopResult("error", code=str(exc.code), message=exc.message, ms=_ms(started))
        result = read_answer(response.body, response.status_code)
        result.ms = _ms(started)
        result.tokens = int(x.scratch.get("tokens", 0))
        result.charged = bool(x.scratch.get("budget_adopted"))
        return result


def read_answer(raw: bytes | memoryview, status: int) -> HopResult:
    """A member's JSON-RPC answer (v1.0) → state, output parts and reported tool calls."""
    try:
        envelope = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError:
        return HopResult("error", code="invalid_agent_response", message=f"HTTP {status}: not JSON")
    if not isinstance(envelope, dict):
        return HopResult("error", code="invalid_agent_response", message="not a JSON-RPC response")
    if "error" in envelope:
        err = envelope["error"] if isinstance(envelope["error"], dict) else {}
        return HopResult("error", code=str(err.get("code", "")), message=str(err.get("message", ""))[:500])
    value = envelope.get("result")
    value = value if isinstance(value, dict) else {}
    if isinstance(value.get("message"), dict):  # a direct Message: completed by definition
        msg = value["message"]
        return HopResult(COMPLETED, parts=_parts(msg.get("parts")), tool_calls=_tool_calls(msg))
    task = value.get("task") if isinstance(value.get("task"), dict) else value
    status_obj = task.get("status") if isinstance(task.get("status"), dict) else {}
    state = str(status_obj.get("state", "TASK_STATE_UNKNOWN"))[:40]
    parts = [p for a in task.get("artifacts") or [] if isinstance(a, dict) for p in _parts(a.get("parts"))]
    if not parts and isinstance(status_obj.get("message"), dict):
        parts = _parts(status_obj["message"].get("parts"))
    gateway = (task.get("metadata") or {}).get("gateway") if isinstance(task.get("metadata"), dict) else None
    inner = {k: gateway[k] for k in ("reason", "limit", "detail") if k in gateway} \
        if isinstance(gateway, dict) and "reason" in gateway else None
    detail = " ".join(p.text or "" for p in parts)[:500] if state != COMPLETED else ""
    return HopResult(state, parts=parts, tool_calls=_tool_calls(task), task_id=str(task.get("id", ""))[:200],
                     inner_reason=inner, message=detail)


def _parts(raw: Any) -> list[Part]:
    out = []
    for p in raw if isinstance(raw, list) else []:
        if isinstance(p, dict):
            try:
                out.append(Part.model_validate(p))
            except ValueError:
                continue  # a part the wire model cannot read is not fed to the next member
    return out


def _tool_calls(obj: dict[str, Any]) -> int:
    usage = (obj.get("metadata") or {}).get("usage") if isinstance(obj.get("metadata"), dict) else None
    value = usage.get("toolCalls", usage.get("tool_calls")) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and 0 <= value < 10**6 else 0


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000
