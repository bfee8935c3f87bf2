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
from .input_relay import InputRelay
from .mcp import jsonrpc as rpc
from .spec import ToolCallRequest


class ToolCallRunner:
    def __init__(self, pipeline: Pipeline, relay: InputRelay | None = None) -> None:
        self._pipeline = pipeline
        self._relay = relay  # a 2026 server's questions to a 2025 client (input_relay.py)

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
        if req.input_required is not None:
            return self._ask(ctx, msg, *req.input_required)
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


    def _ask(self, ctx: McpContext, msg: rpc.Message, result: dict[str, Any],
             asks: list[tuple[str, dict[str, Any]]]) -> Reply:
        """The server's questions as `elicitation/create` requests on the call's stream; the final answer once the
        client answered them (any instance) and the call ran again with its answers."""
        refused = rpc.error(msg.id, rpc.INPUT_NOT_RELAYED, "The tool asked for more input, which this client can "
                            "only give on an SSE answer stream (send Accept: text/event-stream).")
        if self._relay is None:
            return Reply(refused)
        ids = {key: self._relay.new_id() for key, _ in asks}
        before = [rpc.request(ids[key], "elicitation/create", params) for key, params in asks]
        return Reply(None, before=before, wait=self._after_input(ctx, msg, result, ids), fallback=refused)

    async def _after_input(self, ctx: McpContext, msg: rpc.Message, result: dict[str, Any], ids: dict[str, str]
                           ) -> dict[str, Any]:
        assert self._relay is not None
        try:
            answers = await self._relay.wait(ctx.project_id, ctx.caller, list(ids.values()))
        except rpc.Fault as fault:
            return rpc.error(msg.id, fault.code, fault.message, fault.data)
        params = {**msg.params, "inputResponses": {key: answers[rid] for key, rid in ids.items()}}
        if "requestState" in result:
            params["requestState"] = result["requestState"]
        again = rpc.Message(raw={**msg.raw, "params": params}, method=msg.method, id=msg.id, params=params)
        ctx.started = time.perf_counter()
        reply = await self(ctx, again)  # the call with the answers: a governed call of its own
        if reply.wait is not None:  # it asked again: one round is relayed
            reply.wait.close()
            return rpc.error(msg.id, rpc.INPUT_NOT_RELAYED, "The tool asked for more input again; only one round "
                             "of questions is relayed to this client's protocol revision.")
        return reply.message or rpc.error(msg.id, rpc.INTERNAL_ERROR, "No answer.")


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
