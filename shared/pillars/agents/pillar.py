"""The agents pillar's operate side, assembled from the shared infrastructure: registry, directory, sync and the
cloud backends. Built lazily by `Services.agents`; tests build it over memory stores and local fakes."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx

from ...config import Settings
from ...errors import DependencyUnavailable
from ...egress import EgressPolicy
from ...storage.documents import DocumentStore
from ...storage.repository import Repository
from .clouds.bedrock import BedrockAliasSwitch, BedrockCatalog, client_config, connection_auth, session_for
from .clouds.bedrock_runtime import BedrockBackend
from .clouds.google_token import GoogleTokens
from .clouds.vertex import VertexBackend, VertexCatalog
from .composition.validate import CompositionCheck
from .credentials import AgentCredentials
from .directory import RepositoryAgentDirectory
from .domain import Agent, AgentBackend, AwsAuth, LifecycleEvent, SyncError, SyncRun, utcnow
from .limits import KeyAgentPolicy, KeyPolicies
from .policy import AgentsPolicy, policy_reader
from .registry import AgentRegistry, RegistryRepos
from .sync.connections import BedrockConnection, VertexConnection, parse_connections
from .sync.engine import SyncEngine

if TYPE_CHECKING:
    from .a2a.task_ids import TaskIds

log = logging.getLogger("gateway.agents")


class AgentsPillar:
    def __init__(self, settings: Settings, store: DocumentStore, egress: EgressPolicy, http: httpx.AsyncClient, *,
                 project_exists: Callable[[str], Any], google_credentials: Callable[[str], Any] | None = None,
                 boto_clients: Callable[[str, Any], Any] | None = None,
                 azure_credential: Callable[[], Any] | None = None) -> None:
        self.settings, self._store, self._egress, self._http = settings, store, egress, http
        self._project_exists = project_exists
        self._google_credentials = google_credentials
        self._boto = boto_clients  # (service, connection-or-agent-auth) → client; tests may inject
        self._azure_credential = azure_credential or _no_azure_credential
        self.connections, self.problems = parse_connections(settings.agents_sync_connections)
        self._clients: dict[tuple[str, str], Any] = {}

    # ---- storage

    @cached_property
    def repos(self) -> RegistryRepos:
        return RegistryRepos(Repository(self._store, Agent), Repository(self._store, LifecycleEvent),
                             Repository(self._store, SyncRun))

    @cached_property
    def policies(self) -> Repository[AgentsPolicy]:
        return Repository(self._store, AgentsPolicy)

    @cached_property
    def key_policies(self) -> KeyPolicies:
        s = self.settings
        return KeyPolicies(Repository(self._store, KeyAgentPolicy), ttl=s.flag_cache_ttl_seconds,
                           max_stale=s.fail_static_max_seconds)

    @property
    def owned_repositories(self) -> list[Repository[Any]]:
        from .composition.tasks import CompositeTask

        r = self.repos
        return [r.agents, r.events, r.runs, self.policies, self.key_policies.repo, Repository(self._store, CompositeTask)]

    # ---- operate

    @cached_property
    def registry(self) -> AgentRegistry:
        hooks = [BedrockAliasSwitch(self.bedrock_connections, lambda c: self._client("bedrock-agent", c))]
        registry = AgentRegistry(self.repos, self._egress, self._http, hooks=hooks)  # type: ignore[list-item]
        registry.spec_checks.append(CompositionCheck(self.repos.agents.find))
        return registry

    @cached_property
    def directory(self) -> RepositoryAgentDirectory:
        s = self.settings
        return RepositoryAgentDirectory(self.repos.agents, ttl=s.flag_cache_ttl_seconds,
                                        max_stale=s.fail_static_max_seconds)

    @cached_property
    def policy(self) -> Callable[[str], Any]:
        return policy_reader(self.policies, self._project_exists)

    @cached_property
    def engine(self) -> SyncEngine:
        return SyncEngine(self.registry, self.policy)

    @property
    def bedrock_connections(self) -> dict[str, BedrockConnection]:
        return {c.name: c for c in self.connections if isinstance(c, BedrockConnection)}

    @property
    def vertex_connections(self) -> dict[str, VertexConnection]:
        return {c.name: c for c in self.connections if isinstance(c, VertexConnection)}

    # ---- clouds

    def _client(self, service: str, target: BedrockConnection | AwsAuth, endpoint: str | None = None) -> Any:
        """boto3 clients are thread-safe and costly to build (hundreds of ms): one per service and target."""
        key = (service, target.model_dump_json())
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._new_client(service, target, endpoint)
        return client

    def _new_client(self, service: str, target: BedrockConnection | AwsAuth, endpoint: str | None) -> Any:
        if self._boto is not None:
            return self._boto(service, target)
        auth = connection_auth(target) if isinstance(target, BedrockConnection) else target
        if isinstance(target, BedrockConnection):
            url = target.endpoint_url if service == "bedrock-agent" else target.runtime_endpoint_url
            endpoint = str(url) if url else None
            timeout = target.timeout_seconds
        else:
            timeout = 60.0
        return session_for(self.settings, auth).client(service, endpoint_url=endpoint, config=client_config(timeout))

    @cached_property
    def google(self) -> GoogleTokens:
        return GoogleTokens(self.settings, self._egress, factory=self._google_credentials)

    def catalog(self, conn: BedrockConnection | VertexConnection) -> Any:
        if isinstance(conn, BedrockConnection):
            return BedrockCatalog(conn, self._client("bedrock-agent", conn))
        setting = conn.service_account_setting or ""
        return VertexCatalog(conn, self._http, lambda: self.google.token(setting))

    async def sync(self, cloud: str, *, trigger: str = "timer", past_due: bool = False,
                   only: str | None = None) -> list[SyncRun]:
        """Run every enabled connection of `cloud` concurrently; each records its own run, none can fail another."""
        conns = [c for c in self.connections if c.cloud == cloud and c.enabled and (only is None or c.name == only)]
        runs = await asyncio.gather(*(self._one(c, trigger, past_due) for c in conns))
        if only is None:
            runs = [*runs, *await self._report_problems(cloud, trigger)]
        return list(runs)

    async def _one(self, conn: Any, trigger: str, past_due: bool) -> SyncRun:
        try:
            catalog = await asyncio.to_thread(self.catalog, conn) if conn.cloud == "bedrock" else self.catalog(conn)
        except Exception as exc:  # noqa: BLE001 - no client (credentials, role): record it as this run's failure
            catalog = _Failing(conn.cloud, exc)
        return await self.engine.run(conn, catalog, trigger=trigger, past_due=past_due)

    async def _report_problems(self, cloud: str, trigger: str) -> list[SyncRun]:
        """Connections the setting holds but that do not validate: logged on every run (there is no project to
        record them in when the entry itself is unreadable)."""
        for p in self.problems:
            log.error("AGENTS_SYNC_CONNECTIONS entry %s (%s) is invalid: %s", p.index, p.name, p.reason)
        return []

    # ---- data plane: how each agent is called

    @cached_property
    def task_ids(self) -> "TaskIds":
        """Sealed A2A task ids, bound to the key that created the task (the MCP sessions' sealing secrets)."""
        from ...sealed import Sealer, session_secrets
        from .a2a.task_ids import PURPOSE, TaskIds

        return TaskIds(Sealer(session_secrets(self.settings), purpose=PURPOSE, deterministic=True))

    @cached_property
    def credentials(self) -> AgentCredentials:
        """Upstream auth headers for A2A agents (the A2A backend adds them to every upstream request)."""
        from ..models.credentials import TokenCache

        return AgentCredentials(self.settings, TokenCache(self._azure_credential), self.google)

    @cached_property
    def bedrock_backend(self) -> BedrockBackend:
        def client_for(agent: Agent) -> Any:
            conn = self.bedrock_connections.get(agent.sync_connection or "")
            if conn is not None:
                return self._client("bedrock-agent-runtime", conn)
            auth = agent.spec.auth
            if not isinstance(auth, AwsAuth):
                auth = AwsAuth(region=agent.spec.bedrock.region if agent.spec.bedrock else "us-east-1")
            return self._client("bedrock-agent-runtime", auth)

        return BedrockBackend(client_for)

    @cached_property
    def vertex_backend(self) -> VertexBackend:
        def base(agent: Agent) -> str:
            conn = self.vertex_connections.get(agent.sync_connection or "")
            if conn is not None:
                return conn.base_url
            location = agent.spec.vertex.resource.split("/")[3] if agent.spec.vertex else "us-central1"
            return f"https://{location}-aiplatform.googleapis.com"

        async def token(agent: Agent) -> str:
            setting = getattr(agent.spec.auth, "service_account_setting", None)
            return await self.google.token(setting or "")

        return VertexBackend(self._http, token, base)

    def cloud_backend(self, agent: Agent) -> AgentBackend | None:
        """The gateway's A2A front: the backend of an agent that does not speak A2A; None for A2A upstreams."""
        backend = self.backend_for(agent, None)  # type: ignore[arg-type]
        return backend

    async def agent_of(self, project_id: str, agent_id: str) -> Agent:
        return (await self.directory.resolve(project_id, agent_id)).agent

    def backend_for(self, agent: Agent, a2a: AgentBackend) -> AgentBackend:
        """Bedrock agents → InvokeAgent; Vertex engines → :query/:streamQuery, unless the engine hosts an A2A agent
        (it then has an interface); everything else → the A2A backend."""
        if agent.spec.source == "bedrock":
            return self.bedrock_backend  # type: ignore[return-value]
        if agent.spec.source == "vertex" and not agent.spec.interfaces:
            return self.vertex_backend  # type: ignore[return-value]
        return a2a


def _no_azure_credential() -> Any:
    raise DependencyUnavailable("No Azure credential is configured for managed-identity agents.",
                                code="upstream_credential_unavailable")


class _Failing:
    def __init__(self, cloud: str, exc: Exception) -> None:
        self.cloud, self._exc = cloud, exc

    async def list_agents(self) -> Any:
        raise self._exc


__all__ = ["AgentsPillar", "SyncError", "utcnow"]
