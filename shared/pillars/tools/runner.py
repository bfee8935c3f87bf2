"""Runs one `tools/call` through the governance steps: resolve → arguments → approval → admission → one replica
at a time → bridge → release and log, all in one `finally`.

INTERIM ADAPTER: until the generic pipeline (shared/pipeline, PIPELINE-LANDED) is merged, admission calls the
existing quota enforcer with the tool's own rate limit, replicas are tried in priority order, and the request log
gets one row per call. When the pipeline lands, `spec.py`'s steps replace this loop.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from ...errors import GatewayError
from .calls import PreparedCall, ToolCalls, result_bytes
from .context import McpContext, Reply
from .directory import ResolvedTool
from .mcp import jsonrpc as rpc
from .mcp.upstream import UpstreamFailure

log = logging.getLogger(__name__)


class Release(Protocol):
    def __call__(self, ok: bool) -> None: ...


Admit = Callable[[McpContext, ResolvedTool], Awaitable[Release]]


class CallRecord(Protocol):
    def __call__(self, ctx: McpContext, *, tool: str | None, server: str | None, target: str | None,
                 status: int, error_code: str | None, latency_ms: float, request_bytes: int,
                 response_bytes: int, attempts: list[dict[str, Any]]) -> None: ...


async def _no_admission(ctx: McpContext, tool: ResolvedTool) -> Release:
    return lambda ok: None


class ToolCallRunner:
    def __init__(self, calls: ToolCalls, record: CallRecord, admit: Admit = _no_admission) -> None:
        self._calls = calls
        self._record = record
        self._admit = admit

    async def __call__(self, ctx: McpContext, msg: rpc.Message) -> Reply:
        state: dict[str, Any] = {"attempts": []}
        started = time.perf_counter()
        answer: dict[str, Any] | None = None
        try:
            tool = await self._calls.resolve(ctx, msg)
            state["tool"], state["server"] = tool.definition.name, tool.definition.server_id
            prepared = await self._calls.prepare(ctx, msg, tool)
            if isinstance(prepared, Reply):
                if prepared.wait is not None:  # logged when the wait ends, by the continuation
                    state["deferred"] = True
                    prepared.fallback = rpc.error(msg.id, rpc.APPROVAL_PENDING, "This call waits for an approver; "
                                                  "retry the same call later.")
                    prepared.wait = self._continue(ctx, msg, prepared.wait, started, state)
                answer = prepared.message
                return prepared
            answer = await self._run(ctx, msg, prepared, state)
            return Reply(answer)
        except rpc.Fault as fault:
            answer = rpc.error(msg.id, fault.code, fault.message, fault.data)
            return Reply(answer)
        except GatewayError as exc:
            answer = rpc.error(msg.id, rpc.RATE_LIMITED if exc.status == 429 else rpc.GOVERNANCE_REFUSED,
                               exc.message, {"code": exc.code, **({"retryAfterSeconds": int(exc.headers[
                                   "retry-after"])} if exc.headers.get("retry-after", "").isdigit() else {})})
            return Reply(answer)
        finally:
            if not state.get("deferred"):
                self._log(ctx, msg, answer, started, state)

    async def _continue(self, ctx: McpContext, msg: rpc.Message, wait: Coroutine[Any, Any, PreparedCall],
                        started: float, state: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] | None = None
        try:
            answer = await self._run(ctx, msg, await wait, state)
        except rpc.Fault as fault:
            answer = fault.body() if fault.id is not None else rpc.error(msg.id, fault.code, fault.message,
                                                                         fault.data)
        finally:
            self._log(ctx, msg, answer, started, state)
        return answer

    async def _run(self, ctx: McpContext, msg: rpc.Message, call: PreparedCall, state: dict[str, Any]
                   ) -> dict[str, Any]:
        release = await self._admit(ctx, call.tool)
        ok = False
        try:
            last: Exception | None = None
            for target in sorted(call.targets, key=lambda t: t.priority):
                t0 = time.perf_counter()
                try:
                    result = await self._calls.send(ctx, call, target)
                except UpstreamFailure as exc:
                    state["attempts"].append({"target": target.id, "error": str(exc)[:200],
                                              "ms": round((time.perf_counter() - t0) * 1000, 2)})
                    last = exc
                    continue
                state["target"] = target.id
                state["attempts"].append({"target": target.id, "ms": round((time.perf_counter() - t0) * 1000, 2)})
                answer = await self._calls.finish(ctx, msg, call, result)
                ok = True
                return answer
            raise rpc.Fault(rpc.UPSTREAM_ERROR, "No replica of the MCP server could be reached.", msg.id,
                            {"reason": str(last)[:300]})
        except rpc.Fault as fault:
            if fault.id is None:
                raise rpc.Fault(fault.code, fault.message, msg.id, fault.data) from None
            raise
        finally:
            release(ok)

    def _log(self, ctx: McpContext, msg: rpc.Message, answer: dict[str, Any] | None, started: float,
             state: dict[str, Any]) -> None:
        error = (answer or {}).get("error") if answer else {"code": rpc.INTERNAL_ERROR}
        try:
            self._record(ctx, tool=state.get("tool"), server=state.get("server"), target=state.get("target"),
                         status=200 if not error else _status_of(error.get("code")),
                         error_code=None if not error else str(error.get("code")),
                         latency_ms=round((time.perf_counter() - started) * 1000, 3),
                         request_bytes=len(rpc.dumps(msg.raw)), response_bytes=result_bytes(answer or {}),
                         attempts=state["attempts"])
        except Exception:  # noqa: BLE001 - the log never fails a call; counted by the usage log itself
            log.exception("tools/call could not be logged")


def _status_of(code: Any) -> int:
    """An HTTP-like status for the log row (the wire status of a JSON-RPC error is 200)."""
    return {rpc.GOVERNANCE_REFUSED: 403, rpc.RATE_LIMITED: 429, rpc.APPROVAL_PENDING: 202,
            rpc.INVALID_PARAMS: 400, rpc.UPSTREAM_ERROR: 502, rpc.REQUEST_TIMEOUT: 504,
            rpc.RESULT_TOO_LARGE: 502}.get(code, 500)
