"""`tools/call` through a toolbox, as small steps: resolve (namespaced name → server + original name, scopes,
approval state) → check arguments → per-call approval for sensitive tools → send to one replica → bridge the
result to the client's revision. The generic pipeline wraps these with admission, failover and the request log
(`spec.py`); nothing here counts quotas or writes logs itself."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import Forbidden, NotFound
from . import call_approvals as appr
from .arguments import ArgumentsInvalid, SchemaCache, call_digest
from .context import McpContext, Reply
from .directory import ResolvedTool, ToolDirectory
from .mcp import bridge
from .mcp import jsonrpc as rpc
from .mcp import param_headers
from .mcp import revisions as rev
from .mcp.upstream import Endpoint
from .upstreams import AuthHeaders, SessionPool, endpoints

if TYPE_CHECKING:
    from .tasks import TaskBridge

log = logging.getLogger(__name__)


@dataclass
class PreparedCall:
    """A tools/call that passed every check and may go upstream."""

    tool: ResolvedTool
    arguments: dict[str, Any]
    params: dict[str, Any]          # what the upstream receives (original name, no client envelope)
    targets: list[Endpoint]
    timeout: float | None
    max_bytes: int | None
    approval: appr.CallApproval | None = None
    task_mode: str | None = None    # the task shape this call may create ("2025"/"2026"; tasks.py)
    headers: dict[str, str] | None = None  # `Mcp-Param-*` mirrored from the arguments (mcp/param_headers.py)


class ToolCalls:
    def __init__(self, directory: ToolDirectory, pool: SessionPool, auth: AuthHeaders,
                 approvals: appr.CallApprovals | None, *, schemas: SchemaCache | None = None,
                 approval_wait_seconds: float = 20.0, approval_poll_seconds: float = 1.0,
                 executor: Any = None, clock: Callable[[], float] = time.monotonic,
                 tasks: "TaskBridge | None" = None) -> None:
        self._directory = directory
        self._pool = pool
        self._auth = auth
        self._approvals = approvals
        self._schemas = schemas or SchemaCache()
        self._wait = approval_wait_seconds
        self._poll = approval_poll_seconds
        self._clock = clock
        self._executor = executor  # API-to-MCP tools: the registry's ApiExecutor
        self._tasks = tasks        # task-augmented calls (2025-11-25 utility / 2026 extension)

    # ---- steps

    async def resolve(self, ctx: McpContext, msg: rpc.Message) -> ResolvedTool:
        name = msg.params.get("name")
        if not isinstance(name, str) or not name:
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: 'name' must be a tool name.", msg.id)
        try:
            return await self._directory.resolve(ctx.principal, ctx.project_id, ctx.toolbox, name)
        except Forbidden as exc:
            raise rpc.Fault(rpc.GOVERNANCE_REFUSED, exc.message, msg.id, {"code": exc.code}) from None
        except NotFound:
            # Unknown, unapproved, quarantined or outside the toolbox look the same to the caller (spec: -32602).
            raise rpc.Fault(rpc.INVALID_PARAMS, f"Unknown tool: {name[:128]}", msg.id) from None

    async def prepare(self, ctx: McpContext, msg: rpc.Message, tool: ResolvedTool) -> PreparedCall | Reply:
        arguments = msg.params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: 'arguments' must be an object.", msg.id)
        d = tool.definition
        try:
            self._schemas.check(d.definition.input_schema, arguments, d.pinned_hash)
        except ArgumentsInvalid as exc:
            raise rpc.Fault(rpc.INVALID_PARAMS, "Invalid params: the arguments do not match the tool's "
                                                "inputSchema.", msg.id, {"errors": exc.errors}) from None
        mirrored = param_headers.header_map(d.definition.input_schema, d.pinned_hash)
        if ctx.modern and mirrored and (wrong := param_headers.mismatch(mirrored, arguments, ctx.headers)):
            raise rpc.Fault(rpc.HEADER_MISMATCH, wrong, msg.id)
        params = {**bridge.strip_envelope(msg.params), "name": d.original_name, "arguments": arguments}
        # What a 2026 server may ask this client (InputRequiredResult): a 2026 client answers on its retry; a 2025
        # client that declared elicitation is asked on its stream (input_relay.py), form mode only.
        relayed = bridge.relayed_capabilities(msg.params) if ctx.modern else \
            {"elicitation": {}} if ctx.elicitation and ctx.session is not None else None
        if relayed:
            params["_meta"] = {**params.get("_meta", {}), rev.CLIENT_CAPABILITIES_KEY: relayed}
        digest = call_digest(d.name, arguments) if d.sensitive else None
        if digest is not None and msg.params.get("requestState") == appr.approval_id(ctx.caller, d.name, digest):
            # the client's retry of OUR approval round trip (the state is this very call's approval id): not the
            # server's business. Any other requestState (the server's own, whatever it looks like) goes upstream.
            params.pop("inputResponses", None)
            params.pop("requestState", None)
        if tool.server is not None:
            targets = await endpoints(tool.server, self._auth)
            timeout = d.limits.timeout_seconds or tool.server.spec.timeouts.call_seconds
        elif tool.api_source is not None and self._executor is not None:  # API-to-MCP: one HTTP API target
            targets = [Endpoint(id=f"{tool.api_source.id}/api", url=tool.api_source.resolved_base_url or "")]
            timeout = d.limits.timeout_seconds or tool.api_source.spec.timeouts.call_seconds
        else:
            raise rpc.Fault(rpc.GOVERNANCE_REFUSED, f"Tool '{d.name}' has no upstream on this gateway.", msg.id)
        call = PreparedCall(tool=tool, arguments=arguments, params=params, targets=targets, timeout=timeout,
                            max_bytes=d.limits.max_result_bytes,
                            headers=param_headers.headers_for(mirrored, arguments) if mirrored else None,
                            task_mode=self._tasks.mode(ctx, msg) if self._tasks and tool.server else None)
        if digest is not None:
            waiting = await self._approval(ctx, msg, call, digest)
            if waiting is not None:
                return waiting
        return call

    def send(self, ctx: McpContext, call: PreparedCall, target: Endpoint) -> Awaitable[dict[str, Any]]:
        """Awaitable: one attempt at one replica, the upstream's result object (UpstreamFailure: try the next
        one). A plain function handing back the coroutine that does it: no await level of its own."""
        if call.tool.api_source is not None:
            return self._executor.call(call.tool.api_source, call.tool.definition, call.arguments,
                                       timeout=call.timeout, max_result_bytes=call.max_bytes)
        if self._tasks is None or (call.task_mode is None and "task" not in call.params):  # not a task: as is
            return self._pool.request(target, ctx.caller, ctx.carried, "tools/call", call.params,
                                      timeout=call.timeout, max_bytes=call.max_bytes, headers=call.headers)
        return self._send_task(ctx, call, target)

    async def _send_task(self, ctx: McpContext, call: PreparedCall, target: Endpoint) -> dict[str, Any]:
        assert self._tasks is not None
        d = call.tool.definition
        params = await self._tasks.outbound(ctx, call.task_mode, d.original_name, call.params, target)
        result = await self._pool.request(target, ctx.caller, ctx.carried, "tools/call", params,
                                          timeout=call.timeout, max_bytes=call.max_bytes, headers=call.headers)
        return await self._tasks.inbound(ctx, call.task_mode, d.server_id, target, result)

    async def finish(self, ctx: McpContext, msg: rpc.Message, call: PreparedCall, result: dict[str, Any]
                     ) -> dict[str, Any]:
        if bridge.is_input_required(result) and not ctx.modern:
            # A 2026 server asks for input a 2025 client could only give through a server→client request on a
            # stream bound to one instance: refused with a clear error instead of hanging.
            raise rpc.Fault(rpc.INPUT_NOT_RELAYED, "The tool asked for more input, which this client's protocol "
                                                   "revision cannot provide through the gateway (a 2026-07-28 "
                                                   "client can: it answers on its retry).", msg.id)
        return rpc.result(msg.id, bridge.to_client(result, method="tools/call", client_version=ctx.client_version))

    # ---- per-call approval

    async def _approval(self, ctx: McpContext, msg: rpc.Message, call: PreparedCall, digest: str) -> Reply | None:
        """None once this call claimed its approval (approved → used, before anything goes upstream); else the
        answer that makes it wait. A call that loses the claim to a concurrent or replayed identical call asks for
        a new approval like any call after a used one."""
        if self._approvals is None:
            raise rpc.Fault(rpc.GOVERNANCE_REFUSED, "This tool needs per-call approval, which is not configured.",
                            msg.id)
        d = call.tool.definition
        try:
            shown = appr.preview(call.arguments)
        except appr.ArgumentsTooLarge as exc:
            raise rpc.Fault(rpc.GOVERNANCE_REFUSED, f"The arguments of a call to '{d.name}' are too long to be "
                            f"approved per call: an approver reads them whole, at most {exc.limit} characters "
                            f"of canonical JSON ({exc.size} here).", msg.id,
                            {"code": "approval_arguments_too_large", "limit": exc.limit, "size": exc.size}) from None
        check = dict(project_id=ctx.project_id, toolbox=ctx.toolbox, tool=d.name, caller=ctx.caller, digest=digest,
                     preview=shown)
        approval = await self._approvals.check(**check)
        if approval.state == "approved":
            claimed = await self._approvals.claim(approval)
            if claimed is not None:
                call.approval = claimed
                return None
            approval = await self._approvals.check(**check)  # another call ran under it: this one asks anew
        if approval.state == "rejected":
            raise rpc.Fault(rpc.GOVERNANCE_REFUSED, f"An approver rejected this call: {approval.reason}"[:500],
                            msg.id, {"approvalId": approval.id})
        if not ctx.elicitation:  # the client cannot be asked (no declared `elicitation`): a retry hint
            raise _pending(msg, approval, self._poll)
        text = (f"The call to '{d.name}' waits for an approver (approval {approval.id}, expires "
                f"{approval.expires_at.isoformat()}).")
        elicit = {"mode": "form", "message": text,
                  "requestedSchema": {"type": "object", "properties": {}}}
        if ctx.modern:  # 2026: InputRequiredResult; the client retries with requestState when it wants
            return Reply(rpc.result(msg.id, {"resultType": "input_required", "requestState": approval.id,
                                             "inputRequests": {"approval": {"method": "elicitation/create",
                                                                            "params": elicit}}}))
        # 2025-06-18+: tell the user through elicitation while this stream waits
        ask = rpc.request(f"approval-{approval.id}", "elicitation/create",
                          {"message": text, "requestedSchema": elicit["requestedSchema"]})
        return Reply(None, before=[ask], wait=self._await_decision(ctx, msg, call, approval))

    async def _await_decision(self, ctx: McpContext, msg: rpc.Message, call: PreparedCall,
                              approval: appr.CallApproval) -> PreparedCall:
        """Polls the stored approval (any instance's approver decision is visible) up to the wait bound. Once it is
        approved the runner runs the call again from the start: that run claims the approval (`_approval`), so it
        is not claimed here."""
        assert self._approvals is not None
        deadline = self._clock() + self._wait
        while self._clock() < deadline:
            await asyncio.sleep(self._poll)
            current = await self._approvals.check(project_id=ctx.project_id, toolbox=ctx.toolbox,
                                                  tool=approval.tool, caller=ctx.caller, digest=approval.digest,
                                                  preview=approval.arguments_preview)
            if current.state == "approved":
                return call
            if current.state == "rejected":
                raise rpc.Fault(rpc.GOVERNANCE_REFUSED, f"An approver rejected this call: {current.reason}"[:500],
                                msg.id, {"approvalId": current.id})
        raise _pending(msg, approval, self._poll)


def _pending(msg: rpc.Message, approval: appr.CallApproval, retry: float) -> rpc.Fault:
    return rpc.Fault(rpc.APPROVAL_PENDING, "This call waits for an approver; retry the same call later.", msg.id,
                     {"approvalId": approval.id, "retryAfterSeconds": max(1, int(retry * 5)),
                      "expiresAt": approval.expires_at.isoformat()})


def result_bytes(message: dict[str, Any]) -> int:
    return len(orjson.dumps(message))
