"""The tools pillar's object graph, built lazily from the shared Services (one per worker)."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx

from .api_executor import ApiExecutor
from .approvals import Approvals
from .audit import AuditTrail
from .directory import RegistryToolDirectory
from .openapi import inspect as inspect_api
from .outbound_auth import OutboundAuthenticator
from .pin_check import ListTimeCheck
from .pinning import PinningService
from .probe import Prober
from .queue import AzureSubmissionQueue, SubmissionQueue
from .registry import ToolsRegistry

if TYPE_CHECKING:
    from ...services import Services


class ToolsServices:
    def __init__(self, services: "Services", *, queue: SubmissionQueue | None = None) -> None:
        self._s = services
        self._queue = queue

    @cached_property
    def directory(self) -> RegistryToolDirectory:
        s = self._s.settings
        return RegistryToolDirectory(self._s.store, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def registry(self) -> ToolsRegistry:
        return ToolsRegistry(self._s.store, self._s.egress, on_change=self.directory.invalidate)

    @cached_property
    def upstream_http(self) -> httpx.AsyncClient:
        from ...upstreams.egress_transport import guarded_client

        client = guarded_client(self._s.egress, limits=httpx.Limits(max_connections=200,
                                                                    max_keepalive_connections=50))
        self._s._closeables.append(client)
        return client

    @cached_property
    def auth(self) -> OutboundAuthenticator:
        return OutboundAuthenticator(self._s.settings, self.upstream_http)

    @cached_property
    def prober(self) -> Prober:
        return Prober(self._s.egress, self.upstream_http, self.auth)

    @cached_property
    def executor(self) -> ApiExecutor:
        """The data plane's "send" for API-backed tools."""
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
        return ListTimeCheck(self.registry, self.pinning)

    @cached_property
    def queue(self) -> SubmissionQueue:
        if self._queue is None:
            self._queue = AzureSubmissionQueue(self._queue_client())
            self._s._closeables.append(self._queue)
        return self._queue

    def _queue_client(self) -> Any:
        from azure.storage.queue.aio import QueueClient

        s = self._s.settings
        name = s.tools_approvals_queue
        if s.storage_connection_string:
            return QueueClient.from_connection_string(s.storage_connection_string.get_secret_value(), name)
        return QueueClient(s.queue_endpoint or "", name, credential=self._s.credential)

    @cached_property
    def approvals(self) -> Approvals:
        async def api(source: Any) -> Any:
            return await inspect_api(source, self.upstream_http, self._s.egress.check)

        return Approvals(self.registry, self.queue, self.audit, inspect_server=self.prober.probe, inspect_api=api)
