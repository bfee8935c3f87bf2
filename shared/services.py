"""The composition root's object graph, built from Settings (function_app.py hands each blueprint only the parts it
uses). Infrastructure clients are created lazily inside the running event loop (async SDK clients bind to it) and
each registers its shutdown on ONE exit stack as it is created, so `close()` unwinds in reverse creation order: the
request log and quota counters flush before the Storage client they write through closes. Each pillar is
assembled by one function (shared/pillars/<pillar>/assemble.py), called from the pillar's part of this object
(shared/pillars/<pillar>/services.py, mixed into `Services`). Nothing here is a module-level global."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .auth.control import ControlPlaneAuth
from .auth.keys import KeyService
from .config import Settings
from .domain.key_requests import KeyRequest
from .domain.keys import VirtualKey
from .domain.quotas import Quota
from .egress import EgressPolicy
from .domain.projects import GlobalFlags, Project
from .flags.service import FlagService
from .guardrails.services import GuardrailServices
from .monitoring.services import MonitoringServices
from .pillars.agents.services import AgentsServices
from .pillars.models.services import ModelsServices
from .pillars.tools.services import ToolsServices
from .storage.documents import DocumentStore
from .storage.repository import Repository
from .quotas.book import QuotaBook
from .quotas.registry import QuotaRegistry
from .registry.projects import ProjectRegistry

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    import httpx

    from .storage.tables import StorageProbe
    from .quotas.enforcer import QuotaEnforcer
    from .usage.log import UsageLog
    from .routing.breaker import Breakers
    from .web.admission import AdmissionGate

log = logging.getLogger("gateway.services")


class Services(ModelsServices, ToolsServices, AgentsServices, GuardrailServices, MonitoringServices):
    """The one object graph: infrastructure clients, the shared gateway services and the exit stack here; each
    pillar's (and guardrails', monitoring's) parts in its own mixin next to its code (`<package>/services.py`)."""

    def __init__(self, settings: Settings, *, store: DocumentStore | None = None,
                 storage: StorageProbe | None = None, http: httpx.AsyncClient | None = None,
                 credential: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._storage = storage
        self._http = http
        self._credential = credential
        self._stack = AsyncExitStack()
        self.close_failures = 0  # shutdown steps that raised (each logged); the others still ran
        for name, given in (("document store", store), ("storage", storage), ("http", http)):
            if given is not None:
                self._on_close(name, getattr(given, "aclose", None) or given.close)

    def _on_close(self, name: str, close: Callable[[], Awaitable[Any]]) -> None:
        async def closing() -> None:
            try:
                await close()
            except Exception:  # noqa: BLE001 - shutting down: log, count, and let the rest close
                self.close_failures += 1
                log.warning("closing %s failed", name, exc_info=True)

        self._stack.push_async_callback(closing)

    # ---- infrastructure clients (lazy: created on first use, in the worker's loop)

    @property
    def credential(self) -> Any:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential  # only needed in Azure (keyless)

            self._credential = DefaultAzureCredential()
            self._on_close("azure credential", self._credential.close)
        return self._credential

    @property
    def store(self) -> DocumentStore:
        if self._store is None:
            from .storage.cosmos import CosmosDocumentStore, make_cosmos_client

            s = self.settings
            conn = s.cosmos_connection_string.get_secret_value() if s.cosmos_connection_string else None
            self._store = CosmosDocumentStore(
                lambda: make_cosmos_client(connection_string=conn, endpoint=s.cosmos_endpoint,
                                           credential=None if conn else self.credential,
                                           timeout=s.dependency_timeout_seconds),
                s.cosmos_database, s.cosmos_container, create_if_missing=s.cosmos_create_if_missing,
                timeout=s.dependency_timeout_seconds)
            self._on_close("document store", self._store.close)
        return self._store

    @property
    def storage(self) -> StorageProbe:
        if self._storage is None:
            from .storage.tables import StorageProbe  # the Tables SDK: on first use

            s = self.settings
            conn = s.storage_connection_string.get_secret_value() if s.storage_connection_string else None
            self._storage = StorageProbe.create(connection_string=conn, table_endpoint=s.table_endpoint,
                                                credential=None if conn else self.credential,
                                                timeout=s.dependency_timeout_seconds)
            self._on_close("storage", self._storage.close)
        return self._storage

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=10.0)
            self._on_close("http", self._http.aclose)
        return self._http

    # ---- registry and gateway services

    @cached_property
    def projects(self) -> Repository[Project]:
        return Repository(self.store, Project)

    @cached_property
    def global_flags(self) -> Repository[GlobalFlags]:
        return Repository(self.store, GlobalFlags)

    @cached_property
    def keys(self) -> Repository[VirtualKey]:
        return Repository(self.store, VirtualKey)

    @property
    def owned_by_project(self) -> list[Repository[Any]]:
        """Every repository whose documents live in a project's partition (a project is deletable when empty)."""
        from .pillars.models.responses_directory import ResponseRoute

        return [self.keys, self.models, self.quotas, self.key_requests, self.guardrail_policies, self.alert_rules,
                self.experiments, self.experiment_feedback, Repository(self.store, ResponseRoute),
                *self.agents.owned_repositories, *self.tools.registry.owned]

    @cached_property
    def key_requests(self) -> Repository[KeyRequest]:
        return Repository(self.store, KeyRequest)

    @cached_property
    def quotas(self) -> Repository[Quota]:
        return Repository(self.store, Quota)

    @cached_property
    def egress(self) -> EgressPolicy:
        s = self.settings
        hosts = frozenset(h.strip() for h in s.egress_allowed_hosts.split(",") if h.strip())
        return EgressPolicy(allow_loopback=s.egress_allow_loopback, allow_private=s.egress_allow_private,
                            allowed_hosts=hosts)

    @cached_property
    def quota_book(self) -> QuotaBook:
        s = self.settings
        return QuotaBook(self.quotas, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def enforcer(self) -> "QuotaEnforcer":
        from .quotas.enforcer import QuotaEnforcer
        from .quotas.store import TableCounterStore

        table = self.storage.tables.get_table_client("gatewayquotas")
        enforcer = QuotaEnforcer(TableCounterStore(table, self.settings.dependency_timeout_seconds),
                                 lease_fraction=self.settings.quota_lease_fraction,
                                 default_completion_tokens=self.settings.quota_default_completion_tokens)
        self._on_close("quota charges", enforcer.drain)  # before Storage closes (LIFO)
        return enforcer

    @cached_property
    def usage_log(self) -> "UsageLog":
        from .usage.log import TableUsageSink, UsageLog

        usage = UsageLog(TableUsageSink(self.storage.tables.get_table_client("gatewayrequests")),
                         flush_seconds=self.settings.usage_flush_seconds, max_buffer=self.settings.usage_buffer_records)
        self._on_close("request log", usage.close)  # flushes before Storage closes (LIFO)
        return usage

    @cached_property
    def telemetry(self) -> Any:
        """The pipeline's telemetry: OpenTelemetry when TELEMETRY_ENABLED, else the pipeline's no-op."""
        s = self.settings
        if not s.telemetry_enabled:
            from .pipeline.telemetry import NoTelemetry

            return NoTelemetry()
        from .telemetry.hooks import OtelTelemetry
        from .telemetry.setup import Sampling, start

        conn = s.appinsights_connection_string.get_secret_value() if s.appinsights_connection_string else None
        providers = start(s.telemetry_exporter, connection_string=conn, entra_auth=s.telemetry_entra_auth,
                          sampling=Sampling(s.telemetry_sampling_ratio, s.telemetry_traces_per_second))
        self._on_close("telemetry providers", _ProviderCloser(providers).close)  # after the pipelines (LIFO)
        return OtelTelemetry(providers.tracer_provider.get_tracer("ai-gateway"),
                             providers.meter_provider.get_meter("ai-gateway"))

    def _instrument(self, upstream_http: "httpx.AsyncClient", breakers: "Breakers") -> None:
        """Given to each pillar's assembly: W3C trace context on its upstream client, its breakers as a gauge."""
        if self.settings.telemetry_enabled:
            from .telemetry.propagation import install

            install(upstream_http)
            self.telemetry.observe_breakers(breakers)

    def job_outcome(self, job: str, outcome: str) -> None:
        """`gateway.job.outcomes{job, outcome}`: queue messages, sync runs and timers by outcome (telemetry on).
        Callers pass fixed words (bounded cardinality); nothing is built when telemetry is off."""
        if self.settings.telemetry_enabled:
            self.telemetry.outcome(job[:64], outcome[:40])

    def _trace_carrier(self) -> Any:
        """Telemetry on: the current span's W3C trace context (MCP `_meta`, A2A message metadata); else None."""
        if not self.settings.telemetry_enabled:
            return None
        from .telemetry.propagation import carrier

        return carrier

    # ---- registry services (control plane): each drops the caches its writes affect

    @cached_property
    def project_registry(self) -> ProjectRegistry:
        return ProjectRegistry(self.projects, self.global_flags, self.flags, owned=lambda: self.owned_by_project,
                               invalidate=(self.catalog.invalidate, self.quota_book.invalidate,
                                           self.guardrail_book.invalidate, self.experiment_book.invalidate),
                               on_purge=self._forget_purged_key)

    def _forget_purged_key(self, entity: object) -> None:
        if isinstance(entity, VirtualKey):
            self.key_service.forget(entity)

    @cached_property
    def quota_registry(self) -> QuotaRegistry:
        # scope word → existence check of the named resource; the tools/agents pillars add theirs here
        return QuotaRegistry(self.quotas, self.quota_book, {
            "key": self.keys.get, "model": self.models.get,
            "tool": lambda pid, name: self.tools.registry.tools.get(pid, name),  # lazy: tools load on first use
            "agent": lambda pid, name: self.agents.repos.agents.get(pid, name)})

    @cached_property
    def flags(self) -> FlagService:
        s = self.settings
        return FlagService(self.projects, self.global_flags, ttl=s.flag_cache_ttl_seconds,
                           max_stale=s.fail_static_max_seconds)

    @cached_property
    def key_service(self) -> KeyService:
        s = self.settings
        pepper = s.key_hash_secret.get_secret_value().encode() if s.key_hash_secret else None
        return KeyService(self.keys, pepper=pepper, accept_legacy=s.accept_legacy_virtual_keys,
                          ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def control_auth(self) -> ControlPlaneAuth:
        s = self.settings
        entra = None
        if s.entra_tenant_id and s.entra_audience:
            from .auth.entra import EntraValidator  # PyJWT and cryptography: only when Entra sign-in is set up

            entra = EntraValidator(tenant_id=s.entra_tenant_id, audience=s.entra_audience, http=self.http,
                                   issuer=s.entra_issuer, jwks_url=s.entra_jwks_url, admin_role=s.entra_admin_role,
                                   developer_role=s.entra_developer_role, cache_seconds=s.jwks_cache_seconds)
        return ControlPlaneAuth(admin_key=s.admin_key.get_secret_value() if s.admin_key else None, entra=entra)

    @cached_property
    def admission(self) -> "AdmissionGate":
        """One admission gate per worker process for every data-plane surface (models, MCP, A2A)."""
        from .web.admission import AdmissionGate

        s = self.settings
        return AdmissionGate(max_in_flight=s.max_in_flight, max_queue=s.admission_queue,
                             queue_timeout=s.admission_wait_ms / 1000, retry_after=s.overload_retry_after_seconds)

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency checked concurrently, plus the request log's counters (never a reason to be unready:
        rows buffer while Storage is down; `dropped`/`rejected` above 0 mean rows were lost); never raises."""

        async def check(ping: Any) -> dict[str, str]:
            try:
                await ping()
                return {"status": "ok"}
            except Exception as exc:  # noqa: BLE001 - a readiness probe reports, it does not fail
                return {"status": "unavailable", "error": getattr(exc, "code", type(exc).__name__)}

        cosmos, storage = await asyncio.gather(check(self.store.ping), check(self.storage.ping))
        usage = self.__dict__.get("usage_log")
        log_stats = usage.stats() if usage is not None else {"buffered": 0, "dropped": 0, "rejected": 0}
        enforcer = self.__dict__.get("enforcer")
        quota_stats = enforcer.stats() if enforcer is not None else {"deferred_charges": 0, "deferred_returns": 0,
                                                                       "lease_failures": 0}
        # counter writes deferred during a Storage outage: quota accounting lags (settled with the next lease)
        checks: dict[str, dict[str, Any]] = {
            "cosmos": cosmos, "storage": storage, "usage_log": {"status": "ok", **log_stats},
            "quotas": {"status": "ok", **quota_stats}}
        gate = self.__dict__.get("admission")
        if gate is not None:  # shedding is the gate doing its job, never a reason to be unready
            checks["admission"] = {"status": "ok", **gate.stats()}
        return checks

    def warm(self) -> list[str]:
        """Build what a data-plane call would otherwise build on first use (the warmup trigger, functions/warmup.py):
        each pillar's plane — its imports, upstream clients, TLS contexts, pipeline. No network I/O. Returns the
        planes built; one that fails is logged and left to its first call (the others are still built)."""
        built = []
        for name, build in _PLANES:
            try:
                build(self)
            except Exception:  # noqa: BLE001 - warm-up is an optimisation: the first call builds it (and reports)
                log.warning("warm-up of the %s plane failed; its first call builds it", name, exc_info=True)
                continue
            built.append(name)
        return built

    async def close(self) -> None:
        """Unwind the exit stack: everything in reverse creation order; a failing step is logged and counted."""
        await self._stack.aclose()


# Each data plane as its first call would build it (cached properties: built once, then shared).
_PLANES: tuple[tuple[str, Callable[[Any], object]], ...] = (
    ("models", lambda s: s.models_pipeline),
    ("tools", lambda s: s.tools.mcp),
    ("agents", lambda s: (s.agents_pipeline, s.agents_front, s.agents_cards)),
)


class _ProviderCloser:
    """Flushes the telemetry providers at shutdown (spans are batched off the request path)."""

    def __init__(self, providers: Any) -> None:
        self._providers = providers

    async def close(self) -> None:
        for provider in (self._providers.tracer_provider, self._providers.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None:
                await asyncio.to_thread(shutdown)
