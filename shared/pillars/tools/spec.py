"""The tools pillar's spec for the generic pipeline: what is particular to an MCP `tools/call`.

resolve: namespaced name → tool + server (scopes, approval state, toolbox), arguments against the pinned
         inputSchema, per-call approval; the server's replicas are the failover targets.
estimate: one request (quotas count requests; (tools, tool) quotas and the tool's own rate limit apply).
send:    one JSON-RPC exchange with one replica (the upstream session pool); a replica that cannot be reached is
         an httpx transport error, so the pipeline fails over. Timeouts are NOT retried on another replica: a
         tool call may have side effects.
relay / usage: the bridged JSON-RPC answer; the log row's attributes (toolbox, server, tool, caller, sizes).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx

from ...domain.base import Pillar
from ...domain.quotas import Quota, QuotaLimits
from ...domain.routing import RetryPolicy, RoutingPolicy
from ...errors import McpRefused
from ...pipeline.exchange import Estimate, Exchange, Relayed, Usage
from ...quotas.book import QuotaBook
from .calls import PreparedCall, ToolCalls
from .context import McpContext, Reply
from . import input_relay
from .mcp import bridge
from .mcp import jsonrpc as rpc
from .mcp.upstream import Endpoint, UpstreamFailure

# Only unreachable replicas fail over (no status is retried: a tool call is not assumed idempotent).
TOOLS_ROUTING = RoutingPolicy(retry=RetryPolicy(retry_on_status=[], max_attempts=3))
_LOG_STATUS = {rpc.GOVERNANCE_REFUSED: 403, rpc.RATE_LIMITED: 429, rpc.APPROVAL_PENDING: 202,
               rpc.INVALID_PARAMS: 400, rpc.UPSTREAM_ERROR: 502, rpc.REQUEST_TIMEOUT: 504,
               rpc.RESULT_TOO_LARGE: 502, rpc.MISSING_CLIENT_CAPABILITY: 400,
               rpc.INPUT_NOT_RELAYED: 400}


@dataclass
class ToolCallRequest:
    ctx: McpContext
    msg: rpc.Message
    call: PreparedCall | None = None
    reply: Reply | None = None      # a governance answer that replaces the upstream call (approval pending)
    answer: dict[str, Any] | None = None
    upstream_error: int | None = None
    response_bytes: int | None = None  # set once an answer (the server's or its error) was bridged
    # the server asked this 2025 client for input it can give on its stream (input_relay.py): (result, asks)
    input_required: tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]] | None = None


class Answered:
    """The bridged JSON-RPC answer as the failover loop sees it (status 200, the bytes the client gets). What
    failover and settlement read of an `httpx.Response` (`status_code`, `headers`, `is_closed`) and what `relay`
    reads (`content`), without building an httpx response, its header list and byte stream on every call."""

    __slots__ = ("content",)
    status_code = 200
    is_closed = True
    headers: Mapping[str, str] = MappingProxyType({"content-type": "application/json"})  # shared, so read-only

    def __init__(self, content: bytes) -> None:
        self.content = content


def refused(fault: rpc.Fault, msg: rpc.Message) -> McpRefused:
    body = rpc.error(msg.id, fault.code, fault.message, fault.data)
    return McpRefused(fault.message, rpc_error=body, status=_LOG_STATUS.get(fault.code, 400),
                      code=f"mcp_{-fault.code}")


class ToolsSpec:
    pillar = Pillar.tools
    noun = "MCP server"

    def __init__(self, calls: ToolCalls, book: "ToolQuotaBook | None" = None) -> None:
        self._calls = calls
        self._book = book

    async def resolve(self, x: Exchange) -> None:
        req: ToolCallRequest = x.request
        tool = await self._calls.resolve(req.ctx, req.msg)  # unknown tools: a Fault before any row (no entity)
        x.resource, x.entity = tool.definition.name, tool
        if self._book is not None:
            self._book.note(req.ctx.project_id, x.resource, tool.definition.limits.rate_per_minute)
        try:
            prepared = await self._calls.prepare(req.ctx, req.msg, tool)
        except rpc.Fault as fault:
            raise refused(fault, req.msg) from None
        if isinstance(prepared, Reply):  # waits for an approver: logged as 202, answered by the transport
            req.reply = prepared
            raise McpRefused("tool call waits for approval", rpc_error=prepared.message or {}, status=202,
                             code="mcp_approval_pending")
        req.call = prepared
        x.targets, x.routing = prepared.targets, TOOLS_ROUTING

    async def estimate(self, x: Exchange) -> Estimate:
        return Estimate()  # one request; no tokens

    def capacity(self, target: Any) -> int | None:
        return None

    async def send(self, x: Exchange, target: Endpoint) -> "Answered":
        req: ToolCallRequest = x.request
        assert req.call is not None
        try:
            result = await self._calls.send(req.ctx, req.call, target)
            asks = input_relay.relayable(req.ctx, result) if bridge.is_input_required(result) else None
            if asks is not None:  # the runner asks the client on its stream, then calls again (input_relay.py)
                req.input_required = (result, asks)
                answer = rpc.result(req.msg.id, {"content": [], "isError": False})  # this leg's log row only
            else:
                answer = await self._calls.finish(req.ctx, req.msg, req.call, result)
        except UpstreamFailure as exc:
            # A transport error makes the pipeline fail over; the original class (EgressRefused, ConnectError)
            # names the reason in the client's error and the log row.
            if isinstance(exc.__cause__, httpx.TransportError):
                raise exc.__cause__ from None
            raise httpx.ConnectError(str(exc)) from None
        except rpc.Fault as fault:  # the server's own JSON-RPC error, a timeout, a result too large
            answer = rpc.error(req.msg.id, fault.code, fault.message, fault.data)
            req.upstream_error = fault.code
        req.answer = answer
        body = rpc.dumps(answer)
        req.response_bytes = len(body)
        return Answered(body)

    def relay(self, x: Exchange) -> Relayed:
        """The answer as delivered (the runner sends its JSON-RPC bytes; the status is only the log row's): a call
        that ended in a JSON-RPC error after reaching the server — its own error, a timeout, a result over the
        limit — is an error in the request log, metrics and alerts, not a 200."""
        assert x.outcome is not None
        code = x.request.upstream_error
        if code is not None:
            x.error_code = f"mcp_{-code}"
        status = 200 if code is None else _LOG_STATUS.get(code, 502)
        return Relayed(status=status, headers={}, body=x.outcome.response.content, media_type="application/json")

    def usage(self, x: Exchange) -> Usage:
        req: ToolCallRequest = x.request
        attrs: dict[str, int | float | bool | str] = {
            "toolbox": req.ctx.toolbox, "tool": x.resource, "caller": req.ctx.caller,
            "mcp_version": req.ctx.client_version}
        if req.call is not None and req.response_bytes is not None:
            # Measured here, after the answer was sent (usage runs in the pipeline's after-send finish), not on
            # the caller's path: the arguments are serialised once more only for the log row's size.
            attrs["request_bytes"] = len(rpc.dumps(req.call.params))
            attrs["response_bytes"] = req.response_bytes
        if req.call is not None:
            attrs["server"] = req.call.tool.definition.server_id
        if req.upstream_error is not None:
            attrs["jsonrpc_error"] = req.upstream_error
        return Usage(attributes=attrs)


class ToolQuotaBook:
    """The quota book plus each tool's own rate limit (ToolDefinition.limits.rate_per_minute) as one more
    (tools, tool) quota — on its own counter, so it never shares a window with an admin's stored tool quota."""

    def __init__(self, book: QuotaBook) -> None:
        self._book = book
        self._rates: dict[tuple[str, str], int] = {}

    def note(self, project_id: str, tool: str, rate: int | None) -> None:
        if rate is None:
            self._rates.pop((project_id, tool), None)
            return
        if len(self._rates) >= 100_000 and (project_id, tool) not in self._rates:
            # Bounded memory without ever dropping a limit that applies: every call notes its tool's rate right
            # before admission, so a cleared entry is written again by the next call that needs it.
            self._rates.clear()
        self._rates[(project_id, tool)] = rate

    async def for_call(self, project_id: str, key_id: str | None, pillar: Pillar, resource: str) -> list[Quota]:
        quotas = await self._book.for_call(project_id, key_id, pillar, resource)
        rate = self._rates.get((project_id, resource))
        if rate is not None:
            quotas = [*quotas, Quota(id=f"tool-limit.{resource}", project_id=project_id, scope="tool",
                                     target=f"{resource}#limit", limits=QuotaLimits(requests_per_minute=rate))]
        return quotas
