"""Agents pillar: the registry contracts (Agent, LifecycleEvent, SyncRun), the lifecycle rules, and the two seams
the gateway is built on — `AgentDirectory` (which agent answers, for whom) and `AgentBackend` (how one is called,
in A2A v1.0 terms, whatever the upstream: A2A, Bedrock or Vertex).

Every stored entity lives in its project's partition of the one registry container and goes through
`shared.storage.repository.Repository` (kind-checked, re-validated on read). Every number is bounded.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import Field, HttpUrl, JsonValue, field_validator, model_validator

from ...auth.principal import Principal
from ...config import UPSTREAM_SECRET_PATTERN, UPSTREAM_SECRET_PREFIX, is_upstream_secret_name
from ...domain.base import Contract, Entity, Pillar, utcnow
from ...errors import (AgentNotInvocable, AgentRetired, AgentSuspended, InvalidTransition, NotFound,
                       ResourceNotAllowed)
from .composition.contracts import Composition
from .wire import Message, SendResult, StreamResponse

AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
AgentId = Annotated[str, Field(pattern=AGENT_ID_PATTERN)]
CONNECTION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"  # short: synced agents' ids are <connection>-<cloud id>

# ---- lifecycle

# The shared states of shared.domain.lifecycle (same values; a unit test keeps them equal). Unlike models, a draft
# agent is not callable: agents are published on purpose (synced ones arrive as drafts).
Lifecycle = Literal["draft", "published", "deprecated", "retired", "suspended"]

# Allowed moves. `suspended` is the kill switch: any live state can be suspended, and a suspension is lifted back
# to published or deprecated (the state it had is remembered in `Agent.suspended_from`). Retired is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"published", "retired"}),
    "published": frozenset({"deprecated", "suspended", "retired"}),
    "deprecated": frozenset({"published", "suspended", "retired"}),
    "suspended": frozenset({"published", "deprecated", "retired"}),
    "retired": frozenset(),
}
INVOCABLE: frozenset[str] = frozenset({"published", "deprecated"})


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = sorted(TRANSITIONS.get(current, frozenset()))
        raise InvalidTransition(f"An agent cannot go from {current} to {target}.",
                                details={"from": current, "to": target, "allowed": allowed})


# ---- the parts of an agent

def upstream_secret_name(name: str | None) -> str | None:
    # Any other setting (the admin key, the key pepper, connection strings) would ship to the upstream's host.
    if name is not None and not is_upstream_secret_name(name):
        raise ValueError(f"must name an app setting {UPSTREAM_SECRET_PREFIX}<NAME> (upper-case letters, digits, _); "
                         "the gateway's own settings can never be an upstream credential")
    return name


SecretSetting = Annotated[str, Field(max_length=116, json_schema_extra={"pattern": UPSTREAM_SECRET_PATTERN},
                                     description="An app setting named UPSTREAM_SECRET_*; nothing else.")]
Text = Annotated[str, Field(max_length=2000)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
MediaType = Annotated[str, Field(min_length=1, max_length=128)]


class A2AInterface(Contract):
    """Where the upstream A2A agent answers, in which protocol version and binding."""

    url: HttpUrl
    protocol_version: Literal["1.0", "0.3"] = "1.0"
    binding: Literal["jsonrpc", "http_json"] = "jsonrpc"


class AgentSkill(Contract):
    id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    description: Text = ""
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    examples: list[Text] = Field(default_factory=list, max_length=16)
    input_modes: list[MediaType] = Field(default_factory=list, max_length=16)
    output_modes: list[MediaType] = Field(default_factory=list, max_length=16)


class UpstreamSecurityScheme(Contract):
    """A security scheme the upstream card declares (how the gateway authenticates to it, not clients to us)."""

    name: str = Field(min_length=1, max_length=128)
    type: Literal["apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"]
    scheme: dict[str, JsonValue] = Field(default_factory=dict, max_length=32,
                                         description="The rest of the scheme as the card states it.")


class NoAuth(Contract):
    type: Literal["none"] = "none"


class SecretAuth(Contract):
    """A static credential from an UPSTREAM_SECRET_* setting, sent in one header."""

    type: Literal["secret"] = "secret"
    setting: SecretSetting
    header: str = Field(default="Authorization", pattern=r"^(Authorization|X-[A-Za-z0-9-]{1,60}|api-key)$")
    prefix: str = Field(default="Bearer ", max_length=32, description="Put before the secret, e.g. 'Bearer '.")

    @field_validator("setting")
    @classmethod
    def _secret_only(cls, name: str) -> str | None:
        return upstream_secret_name(name)


class ManagedIdentityAuth(Contract):
    """An Entra token of the app's managed identity for `scope` (e.g. api://agent/.default)."""

    type: Literal["managed_identity"] = "managed_identity"
    scope: str = Field(min_length=1, max_length=256)
    client_id: str | None = Field(default=None, max_length=64, description="User-assigned identity, if any.")


class AwsAuth(Contract):
    """AWS SigV4 for Bedrock: keys from UPSTREAM_SECRET_* settings, or the default chain (role) when absent."""

    type: Literal["aws"] = "aws"
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
    access_key_id_setting: SecretSetting | None = None
    secret_access_key_setting: SecretSetting | None = None
    role_arn: str | None = Field(default=None, max_length=600,
                                 pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@/_-]+$")

    @field_validator("access_key_id_setting", "secret_access_key_setting")
    @classmethod
    def _secret_only(cls, name: str | None) -> str | None:
        return upstream_secret_name(name)

    @model_validator(mode="after")
    def _both_keys_or_none(self) -> "AwsAuth":
        if (self.access_key_id_setting is None) != (self.secret_access_key_setting is None):
            raise ValueError("set both access_key_id_setting and secret_access_key_setting, or neither")
        return self


class GoogleAuth(Contract):
    """Google OAuth2 from a service-account JSON held in an UPSTREAM_SECRET_* setting."""

    type: Literal["google"] = "google"
    service_account_setting: SecretSetting
    scopes: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=lambda: ["https://www.googleapis.com/auth/cloud-platform"], min_length=1, max_length=8)

    @field_validator("service_account_setting")
    @classmethod
    def _secret_only(cls, name: str) -> str | None:
        return upstream_secret_name(name)


OutboundAuth = Annotated[NoAuth | SecretAuth | ManagedIdentityAuth | AwsAuth | GoogleAuth,
                         Field(discriminator="type")]


class BedrockRef(Contract):
    # AWS documents 10 alphanumerics; accepted a little wider (emulators and future formats), still no separators.
    agent_id: str = Field(pattern=r"^[0-9a-zA-Z]{1,64}$")
    alias_id: str | None = Field(default=None, pattern=r"^([0-9a-zA-Z]{10}|TSTALIASID)$",
                                 description="The alias invoked; None: not invocable until one is known.")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class VertexRef(Contract):
    resource: str = Field(pattern=r"^projects/[^/]{1,128}/locations/[a-z0-9-]{1,64}/reasoningEngines/[^/]{1,128}$",
                          description="projects/{p}/locations/{l}/reasoningEngines/{id}")
    class_method: str = Field(default="query", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
                              description="The engine method :query calls (ADK agents: 'query'/'stream_query').")


class AgentLimits(Contract):
    """Per-agent limits; None means the gateway default (or none)."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrent_tasks: int | None = Field(default=None, ge=1, le=100_000)
    max_turns: int | None = Field(default=None, ge=1, le=10_000)
    max_message_bytes: int | None = Field(default=None, ge=1, le=16_777_216)
    task_timeout_seconds: float | None = Field(default=None, gt=0, le=86_400, allow_inf_nan=False)


Source = Literal["a2a", "manual", "bedrock", "vertex", "composite"]


class AgentSpec(Contract):
    """What an admin (or a sync) writes about an agent. Lifecycle is changed only through transitions."""

    name: str = Field(min_length=1, max_length=200)
    description: Text = ""
    source: Source = "manual"
    card_url: HttpUrl | None = Field(default=None, description="Source a2a: where the upstream card was fetched.")
    interfaces: list[A2AInterface] = Field(default_factory=list, max_length=8)
    skills: list[AgentSkill] = Field(default_factory=list, max_length=128)
    security_schemes: list[UpstreamSecurityScheme] = Field(default_factory=list, max_length=16)
    auth: OutboundAuth = Field(default_factory=NoAuth)
    bedrock: BedrockRef | None = None
    vertex: VertexRef | None = None
    limits: AgentLimits = Field(default_factory=AgentLimits)
    owner: str = Field(default="", max_length=200, description="Team or person answerable for the agent.")
    version: str = Field(default="", max_length=64)
    replacement: AgentId | None = Field(default=None, description="For a deprecated agent: the one to use instead.")
    composition: Composition | None = Field(default=None, description="Source composite: its members and budget.")

    @model_validator(mode="after")
    def _source_has_its_target(self) -> "AgentSpec":
        if (self.source == "composite") != (self.composition is not None):
            raise ValueError("a composite agent (and only one) has a `composition`")
        if self.source == "composite" and (self.interfaces or self.bedrock or self.vertex):
            raise ValueError("a composite agent is answered by the gateway: no interfaces, bedrock or vertex")
        if self.source == "bedrock" and self.bedrock is None:
            raise ValueError("a bedrock agent needs `bedrock` (agent_id, alias_id, region)")
        if self.source == "vertex" and self.vertex is None and not self.interfaces:
            raise ValueError("a vertex agent needs `vertex` (resource) or an A2A interface")
        if self.source in ("a2a", "manual") and not self.interfaces:
            raise ValueError("an A2A agent needs at least one interface")
        return self


class SyncOrigin(Contract):
    """Where a synced agent came from and what the cloud said last (for change detection)."""

    cloud: Literal["bedrock", "vertex"]
    connection: str = Field(pattern=CONNECTION_PATTERN)
    cloud_id: str = Field(min_length=1, max_length=512)
    fingerprint: str = Field(max_length=128, description="Hash of the mapped upstream fields.")
    upstream_status: str = Field(default="", max_length=64)
    upstream_updated_at: str = Field(default="", max_length=64)
    details: dict[str, JsonValue] = Field(default_factory=dict, max_length=64,
                                          description="Cloud-specific facts (version, aliases, model, etag...).")
    last_seen_at: datetime = Field(default_factory=utcnow)


class Agent(Entity):
    kind: ClassVar[str] = "agent"
    spec: AgentSpec
    lifecycle: Lifecycle = "draft"
    lifecycle_reason: str = ""
    lifecycle_changed_at: datetime = Field(default_factory=utcnow)
    suspended_from: Lifecycle | None = None
    # The upstream card as fetched and validated (source a2a); the gateway rewrites it, never serves it raw.
    card: dict[str, JsonValue] | None = None
    origin: SyncOrigin | None = None
    # Top level so a sync can list its agents with one equality query (the store queries top-level fields).
    sync_connection: str | None = None

    def interface(self, prefer: str = "1.0") -> A2AInterface | None:
        """The upstream interface to call: the preferred protocol version if the agent offers it."""
        ifaces = self.spec.interfaces
        return next((i for i in ifaces if i.protocol_version == prefer), ifaces[0] if ifaces else None)


class AgentOut(AgentSpec):
    id: str
    project_id: str
    lifecycle: Lifecycle
    lifecycle_reason: str
    lifecycle_changed_at: str
    origin: SyncOrigin | None = None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, a: Agent) -> "AgentOut":
        return cls(**a.spec.model_dump(), id=a.id, project_id=a.project_id, lifecycle=a.lifecycle,
                   lifecycle_reason=a.lifecycle_reason, lifecycle_changed_at=a.lifecycle_changed_at.isoformat(),
                   origin=a.origin, created_at=a.created_at.isoformat(), updated_at=a.updated_at.isoformat())


# ---- audit and sync records

class FieldChange(Contract):
    field: str = Field(max_length=128)
    before: JsonValue = None
    after: JsonValue = None


class LifecycleEvent(Entity):
    """One line of an agent's audit trail: a transition (from → to) or a change of its registration."""

    kind: ClassVar[str] = "agent_event"
    agent_id: str
    action: Literal["registered", "updated", "transition", "synced"]
    from_state: Lifecycle | None = None
    to_state: Lifecycle | None = None
    actor: str = Field(max_length=256, description="Who: principal subject, or sync:<connection>.")
    reason: str = Field(default="", max_length=2000)
    at: datetime = Field(default_factory=utcnow)
    changes: list[FieldChange] = Field(default_factory=list, max_length=64)


class SyncCounts(Contract):
    created: int = Field(default=0, ge=0, le=1_000_000)
    updated: int = Field(default=0, ge=0, le=1_000_000)
    retired: int = Field(default=0, ge=0, le=1_000_000)
    unchanged: int = Field(default=0, ge=0, le=1_000_000)


class SyncError(Contract):
    code: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    cloud_id: str | None = Field(default=None, max_length=512)


class SyncRun(Entity):
    kind: ClassVar[str] = "agent_sync_run"
    cloud: Literal["bedrock", "vertex"]
    connection: str
    started_at: datetime
    duration_ms: float = Field(ge=0, le=86_400_000)
    status: Literal["succeeded", "partial", "failed", "skipped"]
    counts: SyncCounts = Field(default_factory=SyncCounts)
    errors: list[SyncError] = Field(default_factory=list, max_length=50)
    trigger: Literal["timer", "manual"] = "timer"
    past_due: bool = False


# ---- invocation rules (what the gateway asks before it calls an agent)

@dataclass(frozen=True)
class Invocation:
    """An agent may be called; `headers` go on the response (a deprecated agent's notice)."""

    agent: Agent
    headers: dict[str, str] = field(default_factory=dict)


def check_invocable(agent: Agent, card_path: str = "/agents/{id}/.well-known/agent-card.json") -> Invocation:
    """Published: go. Deprecated: go, with `Deprecation` (RFC 9745) and a successor `Link` to the replacement.
    Suspended: 403 agent_suspended. Retired: 410 agent_retired. Draft: 404 (not visible to callers yet)."""
    state = agent.lifecycle
    if state == "published":
        return Invocation(agent)
    if state == "deprecated":
        at = int(agent.lifecycle_changed_at.timestamp())
        headers = {"Deprecation": f"@{at}"}
        if agent.spec.replacement:
            headers["Link"] = f'<{card_path.format(id=agent.spec.replacement)}>; rel="successor-version"'
        return Invocation(agent, headers)
    details = {"agent": agent.id, "lifecycle": state, "replacement": agent.spec.replacement}
    if state == "suspended":
        raise AgentSuspended(f"Agent '{agent.id}' is suspended.", details=details)
    if state == "retired":
        raise AgentRetired(f"Agent '{agent.id}' is retired.", details=details)
    if state == "draft":
        raise NotFound(f"agent '{agent.id}' does not exist.")
    raise AgentNotInvocable(f"Agent '{agent.id}' takes no calls in state {state}.", details=details)


# ---- seams

class AgentDirectory(Protocol):
    async def resolve(self, project_id: str, agent_id: str, principal: Principal | None = None) -> Invocation:
        """The agent, if this principal may call it now (raises NotFound / AgentSuspended / AgentRetired)."""

    async def list_published(self, project_id: str) -> list[Agent]:
        """Agents a caller can discover: published and deprecated."""


def visible_to(principal: Principal | None, project_id: str) -> bool:
    return principal is None or principal.project_id is None or principal.project_id == project_id


def check_scope(principal: Principal | None, agent_id: str) -> None:
    """The key's agents scope (Principal.scopes[agents]); no scope: every agent of its project."""
    if principal is not None and not principal.may_use(Pillar.agents, agent_id):
        raise ResourceNotAllowed(f"This key may not call agent '{agent_id}'.", code="agent_not_allowed")


class MemoryAgentDirectory:
    """In-process directory for unit tests and composition: the same rules as the registry-backed one."""

    def __init__(self, agents: list[Agent] | None = None) -> None:
        self._agents: dict[tuple[str, str], Agent] = {}
        for a in agents or []:
            self.put(a)

    def put(self, agent: Agent) -> None:
        self._agents[(agent.project_id, agent.id)] = agent

    async def resolve(self, project_id: str, agent_id: str, principal: Principal | None = None) -> Invocation:
        agent = self._agents.get((project_id, agent_id))
        if agent is None or not visible_to(principal, project_id):
            raise NotFound(f"agent '{agent_id}' does not exist.")
        check_scope(principal, agent_id)
        return check_invocable(agent)

    async def list_published(self, project_id: str) -> list[Agent]:
        return sorted((a for (p, _), a in self._agents.items() if p == project_id and a.lifecycle in INVOCABLE),
                      key=lambda a: a.id)


@dataclass
class InvocationContext:
    """What a backend needs besides the message: who calls, the A2A ids, the time budget, a request id."""

    project_id: str
    principal: Principal | None = None
    request_id: str = ""
    context_id: str | None = None
    task_id: str | None = None
    timeout_seconds: float = 60.0
    metadata: dict[str, Any] = field(default_factory=dict)
    # Usage the backend reports back (tokens when the agent states them), read by the request log.
    usage: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class AgentBackend(Protocol):
    """Calls one agent in A2A v1.0 terms. Implementations: A2A upstreams (a2a/), Bedrock and Vertex (clouds/)."""

    async def send_message(self, agent: Agent, message: Message, context: InvocationContext) -> SendResult:
        ...

    def stream_message(self, agent: Agent, message: Message,
                       context: InvocationContext) -> AsyncIterator[StreamResponse]:
        ...
