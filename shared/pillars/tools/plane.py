"""Assembles the MCP data plane from the gateway's services (called once per worker, lazily)."""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ...storage.repository import Repository
from .call_approvals import CallApproval, CallApprovals
from .calls import ToolCalls
from .directory import ToolDirectory
from .gateway import ToolboxServer
from .mcp.session import SessionCodec
from .mcp.upstream import McpUpstream
from .runner import ToolCallRunner
from .spec import ToolQuotaBook, ToolsSpec
from .transport import McpTransport
from .upstreams import SessionPool

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
    tools = services.tools  # the registry side (directory, outbound auth, pinning, API executor)
    directory = directory or tools.directory
    if upstream_http is None:
        from ...upstreams.egress_transport import guarded_client

        upstream_http = guarded_client(services.egress, limits=httpx.Limits(max_connections=1000,
                                                                              max_keepalive_connections=200))
        services._closeables.append(upstream_http)
    upstream = McpUpstream(upstream_http, timeout=s.mcp_call_timeout_seconds, max_bytes=s.mcp_max_result_bytes)
    pool = SessionPool(upstream)

    async def auth(server: Any) -> dict[str, str]:
        return await tools.auth.headers(server.spec.auth)

    approvals = CallApprovals(Repository(services.store, CallApproval), ttl_seconds=s.mcp_approval_ttl_seconds)
    calls = ToolCalls(directory, pool, auth, approvals, approval_wait_seconds=s.mcp_approval_wait_seconds,
                      executor=tools.executor)
    book = ToolQuotaBook(services.quota_book)
    from ...pipeline import Pipeline
    from ...routing.breaker import Breakers

    pipeline = Pipeline(ToolsSpec(calls, book), quotas=book, enforcer=services.enforcer,  # type: ignore[arg-type]
                        breakers=Breakers(), usage=services.usage_log, flags=services.flags)
    runner = ToolCallRunner(pipeline)
    server = ToolboxServer(directory, pool, auth, runner, list_ttl_ms=s.mcp_list_ttl_ms,
                           pin_check=tools.check_listed)
    codec = SessionCodec(session_secrets(services), ttl_seconds=s.mcp_session_ttl_seconds)
    return McpPlane(McpTransport(server, directory, codec, pool, auth), approvals, directory)
