"""The developer's tool playground: call one tool of a toolbox with arguments and see the result together with
the governance trace.

No side door: the call is a `tools/call` JSON-RPC request handed to the toolbox's own MCP server object — the
same `ToolboxServer.handle` → `ToolCallRunner` → pipeline path a client's POST to `/mcp/{toolbox}` takes. So the
playground is governed exactly like the data plane: the toolbox and the caller's tool scopes, approval and
pinning state, arguments against the pinned inputSchema, per-call approval of sensitive tools, quotas and the
tool's rate limit, failover over the server's replicas, result size and time limits, and a request-log row.
The trace is read from the pipeline's own Exchange once the call is over (`McpContext.observe`), not recomputed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...domain.base import AppModel
from ...auth.principal import Principal
from ...pipeline.exchange import Exchange
from .context import McpContext
from .mcp import jsonrpc as rpc
from .mcp import revisions as rev

if TYPE_CHECKING:  # the MCP data plane loads on first use, not when the portal's contracts are imported
    from .gateway import ToolboxServer

# The playground speaks as a 2025-11-25 client without a session or elicitation: sensitive calls answer "waiting
# for an approver" (with the approval id) at once instead of holding a stream open.
CLIENT_VERSION = rev.LATEST_HANDSHAKE
_REFUSALS = {rpc.GOVERNANCE_REFUSED: "governance", rpc.RATE_LIMITED: "admission", rpc.APPROVAL_PENDING:
             "per_call_approval", rpc.UPSTREAM_ERROR: "send", rpc.REQUEST_TIMEOUT: "send",
             rpc.RESULT_TOO_LARGE: "send"}


class TraceStep(AppModel):
    step: str
    ok: bool
    detail: str = ""
    ms: float = 0.0


class PlaygroundResult(AppModel):
    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # the JSON-RPC error a client would have received
    request_id: str = ""                 # the request-log row of this call
    trace: list[TraceStep] = Field(default_factory=list)


@dataclass
class Playground:
    server: ToolboxServer

    async def run(self, principal: Principal, project_id: str, toolbox: str, tool: str,
                  arguments: dict[str, Any], request_id: str) -> PlaygroundResult:
        seen: list[Exchange] = []
        ctx = McpContext(principal=principal, project_id=project_id, toolbox=toolbox, request_id=request_id,
                         client_version=CLIENT_VERSION, started=time.perf_counter(), observe=seen.append)
        msg = rpc.parse_object({"jsonrpc": "2.0", "id": "playground", "method": "tools/call",
                                "params": {"name": tool, "arguments": arguments}})
        assert isinstance(msg, rpc.Message)
        reply = await self.server.handle(ctx, msg)
        answer = reply.message
        if reply.wait is not None:  # not reached for a client without elicitation; never left un-awaited
            reply.wait.close()
            answer = reply.fallback
        answer = answer or {}
        out = PlaygroundResult(ok=False, request_id=request_id, error=answer.get("error"))
        if isinstance(answer.get("result"), dict):
            out.result = answer["result"]
            out.ok = not out.result.get("isError", False)
        out.trace = trace(seen[0] if seen else None, out.error, out.result)
        return out


def trace(x: Exchange | None, error: dict[str, Any] | None, result: dict[str, Any] | None) -> list[TraceStep]:
    """The steps the pipeline took, in order, up to the one that stopped the call."""
    code = error.get("code") if error else None
    message = str(error.get("message", ""))[:500] if error else ""
    resolved = x.entity if x is not None else None
    if resolved is None:
        return [TraceStep(step="resolve", ok=False, detail=message or "not resolved")]
    d = resolved.definition
    steps = [TraceStep(step="resolve", ok=True, detail=(
        f"{d.source} '{d.server_id}', tool '{d.original_name}' approved, pinned {d.pinned_hash[:16]}"))]
    data = error.get("data") if error else None
    if code == rpc.INVALID_PARAMS and isinstance(data, dict) and "errors" in data:
        steps.append(TraceStep(step="validate_arguments", ok=False, detail="; ".join(map(str, data["errors"]))[:500]))
        return steps
    steps.append(TraceStep(step="validate_arguments", ok=True, detail="valid against the pinned inputSchema"))
    if d.sensitive:
        pending = code == rpc.APPROVAL_PENDING
        steps.append(TraceStep(step="per_call_approval", ok=not pending and code != rpc.GOVERNANCE_REFUSED,
                               detail=f"waiting for an approver: {data}"[:500] if pending else message or "approved"))
        if code in (rpc.APPROVAL_PENDING, rpc.GOVERNANCE_REFUSED):
            return steps
    if x.admission is None:
        steps.append(TraceStep(step=_REFUSALS.get(code, "admission"), ok=False, detail=message))
        return steps
    steps.append(TraceStep(step="admission", ok=True, detail=f"{len(x.admission.taken)} quota counter(s) taken"))
    outcome = x.outcome
    if outcome is None:
        attempts = ", ".join(str(a.get("target", "?")) for a in x.failed_attempts)
        steps.append(TraceStep(step="send", ok=False, detail=f"{message} (tried: {attempts or 'none'})"[:500]))
    else:
        steps.append(TraceStep(step="send", ok=error is None and not (result or {}).get("isError", False),
                               detail=f"target {outcome.target.id}, {len(outcome.attempts)} attempt(s)"
                                      + (f"; {message}" if message else ""), ms=round(outcome.upstream_ms, 2)))
    steps.append(TraceStep(step="request_log", ok=True, detail=f"status {x.status}, overhead "
                                                               f"{x.overhead_ms:.2f} ms", ms=0.0))
    return steps
