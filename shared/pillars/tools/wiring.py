"""The tools pillar's object graph (registry, directory, approvals, pinning, outbound auth, the MCP data plane),
built lazily from explicit dependencies: async SDK clients are created on first use, inside the worker's loop, and
each registers its shutdown with the composition root's exit stack (`on_close`). Built by `assemble.assemble_tools`."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...config import Settings
from ...egress import EgressPolicy
from ...flags.service import FlagService
from ...quotas.book import QuotaBook
from ...storage.documents import DocumentStore
from .approvals import Approvals
from .audit import AuditTrail
from .directory import RegistryToolDirectory
from .pinning import PinningService
from .queue import AzureSubmissionQueue, SubmissionQueue
from .registry import ToolsRegistry

if TYPE_CHECKING:  # the upstream side (httpx, the probe, jsonschema, the MCP client) loads on first use
    import httpx

    from .api_executor import ApiExecutor
    from .outbound_auth import OutboundAuthenticator
    from .pin_check import ListTimeCheck
    from .probe import Prober
    from ...quotas.enforcer import QuotaEnforcer
    from ...usage.log import UsageLog
    from .plane import McpPlane

OnClose = Callable[[str, Callable[[], Any]], None]


@dataclass
class ToolsDeps:
    """What the tools pillar takes from the composition root. Callables are lazy (Storage-backed, loop-bound)."""

    settings: Settings
    store: DocumentStore
    egress: EgressPolicy
    quota_book: QuotaBook
    flags: FlagService
    enforcer: Callable[[], "QuotaEnforcer"]
    usage: Callable[[], "UsageLog"]
    credential: Callable[[], Any]
    on_close: OnClose
    telemetry: Callable[[], Any] | None = None  # the pipeline's Telemetry (lazy)
    instrument: Callable[[Any, Any], None] | None = None  # (upstream http, breakers) → trace headers, breaker gauge
    trace: Callable[[], dict[str, str]] | None = None  # the current W3C trace context for MCP `_meta`
    guardrails: Callable[[], Any] | None = None  # the shared GuardrailStep (lazy); None: no guardrail step


class ToolsPillar:
    def __init__(self, deps: ToolsDeps, *, queue: SubmissionQueue | None = None) -> None:
        self.deps = deps
        self._queue = queue

    @cached_property
    def directory(self) -> RegistryToolDirectory:
        s = self.deps.settings
        return RegistryToolDirectory(self.deps.store, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def registry(self) -> ToolsRegistry:
        return ToolsRegistry(self.deps.store, self.deps.egress, on_change=self.directory.invalidate)

    def guarded_http(self, name: str, *, connections: int, keepalive: int) -> httpx.AsyncClient:
        """An upstream client whose every connection passes the egress policy, closed with the app."""
        import httpx

        from ...upstreams.egress_transport import guarded_client

        client = guarded_client(self.deps.egress, limits=httpx.Limits(max_connections=connections,
                                                                      max_keepalive_connections=keepalive))
        self.deps.on_close(name, client.aclose)
        return client

    @cached_property
    def upstream_http(self) -> httpx.AsyncClient:
        return self.guarded_http("tools control-plane http", connections=200, keepalive=50)

    @cached_property
    def auth(self) -> OutboundAuthenticator:
        from .outbound_auth import OutboundAuthenticator

        return OutboundAuthenticator(self.deps.settings, self.upstream_http)

    @cached_property
    def prober(self) -> Prober:
        from .probe import Prober

        return Prober(self.deps.egress, self.upstream_http, self.auth)

    @cached_property
    def executor(self) -> ApiExecutor:
        """The data plane's "send" for API-backed tools."""
        from .api_executor import ApiExecutor

        return ApiExecutor(self.upstream_http, self.auth)

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.registry.records)

    @cached_property
    def pinning(self) -> PinningService:
        return PinningService(self.registry.tools, self.audit, on_change=self.directory.invalidate)

    @cached_property
    def check_listed(self) -> ListTimeCheck:
        """The data plane calls this with each server's raw `tools/list` result (list-time pinning check)."""
        from .pin_check import ListTimeCheck

        return ListTimeCheck(self.registry, self.pinning, self.directory)

    @cached_property
    def queue(self) -> SubmissionQueue:
        if self._queue is None:
            queue = AzureSubmissionQueue(self._queue_client())
            self.deps.on_close("tools approvals queue", queue.close)
            self._queue = queue
        return self._queue

    def _queue_client(self) -> Any:
        from azure.storage.queue.aio import QueueClient

        s = self.deps.settings
        name = s.tools_approvals_queue
        if s.storage_connection_string:
            return QueueClient.from_connection_string(s.storage_connection_string.get_secret_value(), name,
                                                      use_env_settings=False)  # see shared/storage/tables.py
        return QueueClient(s.queue_endpoint or "", name, credential=self.deps.credential(), use_env_settings=False)

    @cached_property
    def approvals(self) -> Approvals:
        from .openapi import inspect as inspect_api

        async def api(source: Any) -> Any:
            return await inspect_api(source, self.upstream_http, self.deps.egress.check)

        return Approvals(self.registry, self.queue, self.audit, inspect_server=self.prober.probe, inspect_api=api)

    @cached_property
    def mcp(self) -> "McpPlane":
        """The MCP data plane (toolboxes at /mcp/{toolbox}); built on first call, inside the worker's loop."""
        from .plane import build

        return build(self)
