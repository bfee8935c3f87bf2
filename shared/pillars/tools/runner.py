"""Runs one `tools/call` through the generic pipeline (admission, failover over the server's replicas,
release-and-log in one finally, the request log) and turns every outcome into the JSON-RPC answer."""
from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from ...domain.base import Pillar
from ...errors import GatewayError, McpRefused
from ...pipeline.exchange import Exchange
from ...pipeline.pipeline import Pipeline
from .context import McpContext, Reply
from .mcp import jsonrpc as rpc
from .spec import ToolCallRequest


class ToolCallRunner:
    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def __call__(self, ctx: McpContext, msg: rpc.Message) -> Reply:
        req = ToolCallRequest(ctx, msg)
        x = Exchange(pillar=Pillar.tools, operation="tools/call", principal=ctx.principal,
                     request_id=ctx.request_id, request=req, headers=ctx.headers,
                     started=ctx.started or time.perf_counter(), trace_carrier=_trace_meta(msg))
        try:
            whole = await self._pipeline.run_whole(x)
        except rpc.Fault as fault:
            return Reply(rpc.error(msg.id, fault.code, fault.message, fault.data))
        except McpRefused as exc:
            if req.reply is None:
                return Reply(exc.rpc_error)
            if req.reply.wait is not None:  # a 2025 client told through elicitation; the call runs once approved
                req.reply.fallback = rpc.error(msg.id, rpc.APPROVAL_PENDING, "This call waits for an approver; "
                                               "retry the same call later.")
                req.reply.wait = self._after_approval(ctx, msg, req.reply.wait)
            return req.reply
        except GatewayError as exc:
            return Reply(_gateway_error(msg, exc))
        finally:
            if ctx.observe is not None:
                ctx.observe(x)
        assert req.answer is not None
        # The pipeline's body is `req.answer` serialised once by the spec (and again only by a step that rewrote
        # it): the transport sends these bytes instead of serialising the answer a second time.
        return Reply(req.answer, body=whole.body if isinstance(whole.body, bytes) else None)

    async def _after_approval(self, ctx: McpContext, msg: rpc.Message, wait: Coroutine[Any, Any, Any]
                              ) -> dict[str, Any]:
        try:
            await wait
        except rpc.Fault as fault:
            return rpc.error(msg.id, fault.code, fault.message, fault.data)
        ctx.started = time.perf_counter()
        reply = await self(ctx, msg)  # approved: a governed call of its own (admission, failover, its log row)
        return reply.message or rpc.error(msg.id, rpc.APPROVAL_PENDING, "Approval pending.")


def _trace_meta(msg: rpc.Message) -> dict[str, Any] | None:
    """The client's W3C trace context in `params._meta` (MCP SEP-414), when it sent one."""
    meta = msg.params.get("_meta")
    return meta if isinstance(meta, dict) and "traceparent" in meta else None


def _gateway_error(msg: rpc.Message, exc: GatewayError) -> dict[str, Any]:
    data: dict[str, Any] = {"code": exc.code}
    retry = exc.headers.get("retry-after", "")
    if retry.isdigit():
        data["retryAfterSeconds"] = int(retry)
    if exc.status == 429:
        code = rpc.RATE_LIMITED
    elif exc.status >= 500:
        code = rpc.UPSTREAM_ERROR
    else:
        code = rpc.GOVERNANCE_REFUSED
    return rpc.error(msg.id, code, exc.message, data)
