"""Assembles the MCP data plane from the gateway's services (called once per worker, lazily)."""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ...domain.quotas import Quota, QuotaLimits
from ...storage.repository import Repository
from .approvals import CallApproval, CallApprovals
from .calls import ToolCalls
from .context import McpContext
from .directory import RegistryToolDirectory, ResolvedTool, ToolDirectory
from .gateway import ToolboxServer
from .mcp.session import SessionCodec
from .mcp.upstream import McpUpstream
from .runner import Release, ToolCallRunner
from .transport import McpTransport
from .upstreams import SessionPool, secret_headers

if TYPE_CHECKING:
    from ...services import Services

log = logging.getLogger(__name__)


@dataclass
class McpPlane:
    transport: McpTransport
    approvals: CallApprovals
    directory: ToolDirectory


def session_secrets(services: "Services") -> list[bytes]:
    s = services.settings
    if s.mcp_session_secrets:
        return [p.strip().encode() for p in s.mcp_session_secrets.get_secret_value().split(",") if p.strip()]
    if s.key_hash_secret:  # a separate key: HKDF in SessionCodec, and a distinct input here
        return [hashlib.sha256(b"mcp-session|" + s.key_hash_secret.get_secret_value().encode()).digest()]
    log.warning("MCP_SESSION_SECRETS and GATEWAY_KEY_HASH_SECRET are unset: MCP sessions are bound to this "
                "instance (a random key) and fail on any other")
    return [secrets.token_bytes(32)]


def build(services: "Services", *, directory: ToolDirectory | None = None,
          upstream_http: httpx.AsyncClient | None = None) -> McpPlane:
    s = services.settings
    directory = directory or getattr(services, "tool_directory", None) or RegistryToolDirectory(
        services.store, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)
    if upstream_http is None:
        from ...upstreams.egress_transport import guarded_client

        upstream_http = guarded_client(services.egress, limits=httpx.Limits(max_connections=1000,
                                                                              max_keepalive_connections=200))
        services._closeables.append(upstream_http)
    upstream = McpUpstream(upstream_http, timeout=s.mcp_call_timeout_seconds, max_bytes=s.mcp_max_result_bytes)
    pool = SessionPool(upstream)
    auth = getattr(services, "mcp_outbound_auth", None) or secret_headers(s)
    approvals = CallApprovals(Repository(services.store, CallApproval), ttl_seconds=s.mcp_approval_ttl_seconds)
    calls = ToolCalls(directory, pool, auth, approvals, approval_wait_seconds=s.mcp_approval_wait_seconds)
    runner = ToolCallRunner(calls, _recorder(services), _admitter(services))
    server = ToolboxServer(directory, pool, auth, runner, list_ttl_ms=s.mcp_list_ttl_ms)
    codec = SessionCodec(session_secrets(services), ttl_seconds=s.mcp_session_ttl_seconds)
    return McpPlane(McpTransport(server, directory, codec, pool, auth), approvals, directory)


def _admitter(services: "Services") -> Any:
    async def admit(ctx: McpContext, tool: ResolvedTool) -> Release:
        rate = tool.definition.limits.rate_per_minute
        if rate is None:
            return lambda ok: None
        quota = Quota(id=f"tool.{tool.definition.name}", project_id=ctx.project_id, scope="model",
                      target=f"tools:{tool.definition.name}", limits=QuotaLimits(requests_per_minute=rate))
        enforcer = services.enforcer
        adm = await enforcer.admit([quota], tokens=0, cost_micros=0)
        return lambda ok: None if ok else enforcer.release(adm)

    return admit


def _recorder(services: "Services") -> Any:
    from ...usage.log import UsageRecord

    def record(ctx: McpContext, *, tool: str | None, server: str | None, target: str | None, status: int,
               error_code: str | None, latency_ms: float, request_bytes: int, response_bytes: int,
               attempts: list[dict[str, Any]]) -> None:
        services.usage_log.record(UsageRecord(
            request_id=ctx.request_id, project_id=ctx.project_id, key_id=ctx.principal.key_id,
            key_prefix=ctx.principal.key_prefix, operation=f"tools/call:{ctx.toolbox}", model=tool,
            backend=target or server, status=status, error_code=error_code, latency_ms=latency_ms,
            overhead_ms=0.0, retries=max(0, len(attempts) - 1), attempts=attempts))

    return record
