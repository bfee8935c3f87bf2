"""Assembles the MCP data plane from the tools pillar's dependencies (called once per worker, lazily)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ...sealed import Sealer, session_secrets
from ...storage.repository import Repository
from .call_approvals import CallApproval, CallApprovals
from .input_relay import InputAnswer, InputRelay
from .calls import ToolCalls
from .directory import ToolDirectory
from .gateway import ToolboxServer
from .mcp.session import SessionCodec
from .mcp.upstream import McpUpstream
from ...upstreams.lean_http import LeanHttp
from .runner import ToolCallRunner
from .spec import ToolQuotaBook, ToolsSpec
from .tasks import PURPOSE as TASK_PURPOSE, TaskBridge
from .transport import McpTransport
from .upstreams import SessionPool

if TYPE_CHECKING:
    from .wiring import ToolsPillar

log = logging.getLogger(__name__)


@dataclass
class McpPlane:
    transport: McpTransport
    approvals: CallApprovals
    directory: ToolDirectory
    server: ToolboxServer | None = None  # the toolbox MCP server (the playground calls through it)


def build(tools: "ToolsPillar", *, directory: ToolDirectory | None = None,
          upstream_http: httpx.AsyncClient | None = None) -> McpPlane:
    deps = tools.deps
    s = deps.settings
    directory = directory or tools.directory
    wire = None
    if upstream_http is None:
        upstream_http = tools.guarded_http("mcp upstream http", connections=200, keepalive=50)  # legacy HTTP+SSE
        wire = LeanHttp(deps.egress, max_connections=1000)  # every streamable-HTTP call
        deps.on_close("mcp upstream pool", wire.aclose)
    upstream = McpUpstream(upstream_http, timeout=s.mcp_call_timeout_seconds, max_bytes=s.mcp_max_result_bytes,
                           wire=wire, trace=deps.trace)
    pool = SessionPool(upstream)

    async def auth(server: Any) -> dict[str, str]:
        return await tools.auth.headers(server.spec.auth)

    approvals = CallApprovals(Repository(deps.store, CallApproval), ttl_seconds=s.mcp_approval_ttl_seconds)
    secrets_ = session_secrets(s)
    tasks = TaskBridge(directory, pool, auth, Sealer(secrets_, purpose=TASK_PURPOSE, deterministic=True),
                       wait_seconds=s.mcp_call_timeout_seconds)
    calls = ToolCalls(directory, pool, auth, approvals, approval_wait_seconds=s.mcp_approval_wait_seconds,
                      executor=tools.executor, tasks=tasks)
    book = ToolQuotaBook(deps.quota_book)
    from ...pipeline.pipeline import Pipeline
    from ...routing.breaker import Breakers

    breakers = Breakers()
    if deps.instrument is not None:
        deps.instrument(upstream_http, breakers)  # traceparent on every upstream request, breakers as a gauge
    steps = []
    if deps.guardrails is not None:
        from .guardrails import ToolsGuardrails

        steps.append(ToolsGuardrails(deps.guardrails()))
    pipeline = Pipeline(ToolsSpec(calls, book), quotas=book, enforcer=deps.enforcer(),  # type: ignore[arg-type]
                        breakers=breakers, usage=deps.usage(), flags=deps.flags, steps=steps,
                        telemetry=deps.telemetry() if deps.telemetry is not None else None)
    relay = InputRelay(Repository(deps.store, InputAnswer), wait_seconds=s.mcp_approval_wait_seconds)
    runner = ToolCallRunner(pipeline, relay)
    server = ToolboxServer(directory, pool, auth, runner, list_ttl_ms=s.mcp_list_ttl_ms,
                           pin_check=tools.check_listed, tasks=tasks)
    codec = SessionCodec(secrets_, ttl_seconds=s.mcp_session_ttl_seconds)
    return McpPlane(McpTransport(server, directory, codec, pool, auth, relay), approvals, directory, server)
