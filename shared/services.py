"""The per-worker object graph, built from Settings. Everything is created lazily inside the running event loop
(async SDK clients bind to it) and passed explicitly to the blueprints; nothing here is a module-level global."""
from __future__ import annotations

import asyncio
import gc
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx

from .auth.control import ControlPlaneAuth
from .auth.entra import EntraValidator
from .auth.keys import KeyService
from .config import Settings
from .domain.key_requests import KeyRequest
from .domain.keys import VirtualKey
from .domain.quotas import Quota
from .egress import EgressPolicy
from .domain.projects import GlobalFlags, Project
from .flags.service import FlagService
from .pillars.models.catalog import ModelCatalog
from .pillars.models.domain import Model
from .storage.documents import DocumentStore
from .storage.repository import Repository
from .storage.tables import StorageProbe

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from .pillars.agents.a2a.card import CardRenderer
    from .pillars.agents.pillar import AgentsPillar
    from .pipeline import Pipeline
    from .quotas.book import QuotaBook
    from .quotas.enforcer import QuotaEnforcer
    from .usage.log import UsageLog


class Services:
    def __init__(self, settings: Settings, *, store: DocumentStore | None = None,
                 storage: StorageProbe | None = None, http: httpx.AsyncClient | None = None,
                 credential: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._storage = storage
        self._http = http
        self._credential = credential
        self._closeables: list[Any] = []

    # ---- infrastructure clients (lazy: created on first use, in the worker's loop)

    @property
    def credential(self) -> Any:
        if self._credential is None:
            from azure.identity.aio import DefaultAzureCredential  # only needed in Azure (keyless)

            self._credential = DefaultAzureCredential()
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
                s.cosmos_database, s.cosmos_container,
                                              create_if_missing=s.cosmos_create_if_missing,
                                              timeout=s.dependency_timeout_seconds)
        return self._store

    @property
    def storage(self) -> StorageProbe:
        if self._storage is None:
            s = self.settings
            conn = s.storage_connection_string.get_secret_value() if s.storage_connection_string else None
            self._storage = StorageProbe.create(connection_string=conn, table_endpoint=s.table_endpoint,
                                                credential=None if conn else self.credential,
                                                timeout=s.dependency_timeout_seconds)
        return self._storage

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
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
        return [self.keys, self.models, self.quotas, self.key_requests, *self.agents.owned_repositories]

    @cached_property
    def agents(self) -> "AgentsPillar":
        from .pillars.agents.pillar import AgentsPillar
        from .upstreams.egress_transport import guarded_client

        # Card fetches, Vertex calls: every connection through the egress policy, on the address connected to.
        http = guarded_client(self.egress, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self._closeables.append(http)
        return AgentsPillar(self.settings, self.store, self.egress, http,
                            project_exists=lambda pid: self.projects.get(pid, pid),
                            azure_credential=lambda: self.credential)

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
    def quota_book(self) -> "QuotaBook":
        from .quotas.book import QuotaBook

        s = self.settings
        return QuotaBook(self.quotas, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

    @cached_property
    def enforcer(self) -> "QuotaEnforcer":
        from .quotas.enforcer import QuotaEnforcer
        from .quotas.store import TableCounterStore

        table = self.storage.tables.get_table_client("gatewayquotas")
        return QuotaEnforcer(TableCounterStore(table, self.settings.dependency_timeout_seconds),
                             lease_fraction=self.settings.quota_lease_fraction,
                             default_completion_tokens=self.settings.quota_default_completion_tokens)

    @cached_property
    def usage_log(self) -> "UsageLog":
        from .usage.log import TableUsageSink, UsageLog

        return UsageLog(TableUsageSink(self.storage.tables.get_table_client("gatewayrequests")),
                        flush_seconds=self.settings.usage_flush_seconds,
                        max_buffer=self.settings.usage_buffer_records)

    @cached_property
    def models_pipeline(self) -> "Pipeline":
        from .pillars.models.credentials import TokenCache, UpstreamCredentials
        from .pillars.models.openai_http import OpenAIHttp
        from .pillars.models.spec import ModelsSpec
        from .pillars.models.tokens import TokenEstimator
        from .pipeline import Pipeline
        from .routing.breaker import Breakers
        from .upstreams.egress_transport import guarded_client

        # Every upstream connection goes through the egress policy (on the address connected to, not the name).
        upstream_http = guarded_client(self.egress, limits=httpx.Limits(max_connections=1000,
                                                                         max_keepalive_connections=200))
        self._closeables.append(upstream_http)
        credentials = UpstreamCredentials(self.settings, TokenCache(lambda: self.credential))
        tokens = TokenEstimator()  # encodings load on first use per model, off the event loop
        # Once the worker has warmed up (SDK clients, BPE tables, caches), move that long-lived heap out of the
        # garbage collector's full passes: gen-2 collections over it took 36–55 ms (docs/benchmarks.md).
        asyncio.get_running_loop().call_later(30, gc.freeze)
        spec = ModelsSpec(catalog=self.catalog, http=OpenAIHttp(upstream_http, credentials), tokens=tokens,
                          enforcer=self.enforcer)
        return Pipeline(spec, quotas=self.quota_book, enforcer=self.enforcer, breakers=Breakers(),
                        usage=self.usage_log, flags=self.flags)

    @cached_property
    def agents_pipeline(self) -> "Pipeline":
        from .pillars.agents.spec import AgentsSpec
        from .pipeline import Pipeline
        from .routing.breaker import Breakers
        from .upstreams.egress_transport import guarded_client

        # A2A upstreams: every connection through the egress policy, on the address actually connected to.
        http = guarded_client(self.egress, limits=httpx.Limits(max_connections=500, max_keepalive_connections=100))
        self._closeables.append(http)
        spec = AgentsSpec(directory=self.agents.directory, http=http, credentials=self.agents.credentials)
        return Pipeline(spec, quotas=self.quota_book, enforcer=self.enforcer, breakers=Breakers(),
                        usage=self.usage_log, flags=self.flags)

    @cached_property
    def agents_cards(self) -> "CardRenderer":
        from .pillars.agents.a2a.card import CardRenderer

        return CardRenderer.from_settings(self.settings)

    @cached_property
    def models(self) -> Repository[Model]:
        return Repository(self.store, Model)

    @cached_property
    def catalog(self) -> ModelCatalog:
        s = self.settings
        return ModelCatalog(self.models, ttl=s.flag_cache_ttl_seconds, max_stale=s.fail_static_max_seconds)

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
            entra = EntraValidator(tenant_id=s.entra_tenant_id, audience=s.entra_audience, http=self.http,
                                   issuer=s.entra_issuer, jwks_url=s.entra_jwks_url, admin_role=s.entra_admin_role,
                                   developer_role=s.entra_developer_role, cache_seconds=s.jwks_cache_seconds)
        return ControlPlaneAuth(admin_key=s.admin_key.get_secret_value() if s.admin_key else None, entra=entra)

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
        return {"cosmos": cosmos, "storage": storage, "usage_log": {"status": "ok", **log_stats}}

    async def close(self) -> None:
        usage = self.__dict__.get("usage_log")
        if usage is not None:
            await usage.close()
        enforcer = self.__dict__.get("enforcer")
        if enforcer is not None:
            await enforcer.drain()
        for resource in (self._store, self._storage, self._http, *self._closeables):
            if resource is None:
                continue
            close = getattr(resource, "aclose", None) or resource.close
            try:
                await close()
            except Exception:  # noqa: BLE001 - shutting down; nothing useful to do
                pass
