"""Tools pillar registry contracts: MCP servers, their tools, toolboxes, OpenAPI-derived servers, and the approval
audit trail. Shared by the control plane (admin/portal APIs, approvals, pinning) and the MCP data plane.

Every entity is a project-partitioned registry document stored through `shared.storage.repository.Repository`
(kind-checked, re-validated on read). Every number is bounded; every URL is checked against the egress policy
when it is registered and again on every connection.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import AfterValidator, Field, HttpUrl, field_validator, model_validator

from ...config import UPSTREAM_SECRET_PATTERN, UPSTREAM_SECRET_PREFIX, is_upstream_secret_name
from ...domain.base import Contract, Entity, Slug, utcnow

# MCP tool names: 1–128 of [A-Za-z0-9_.-] (2025-11-25). The gateway's namespaced names are the stricter subset
# most LLM function-calling APIs also accept: ≤ 64 chars of [A-Za-z0-9_-], so a listed tool can be handed to any
# model unchanged.
MCP_TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
NAMESPACED_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NAMESPACED_NAME_MAX = 64
NAMESPACE_SEPARATOR = "__"
# A namespace is a short lowercase slug without "_", so `<namespace>__<tool>` splits unambiguously.
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,23}$"
_NAMESPACED = re.compile(NAMESPACED_NAME_PATTERN)

Lifecycle = Literal["draft", "published", "deprecated", "retired", "suspended"]
# Lifecycle states in which a server's approved tools may be called (deprecated: still served, flagged).
SERVABLE_LIFECYCLE: frozenset[str] = frozenset({"published", "deprecated"})
ApprovalState = Literal["unsubmitted", "pending", "probed", "approved", "rejected"]
ToolStatus = Literal["pending", "approved", "quarantined", "rejected"]
Transport = Literal["streamable_http", "sse", "stdio_bridge"]
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
# Header names an admin may set for an upstream credential: a token (RFC 9110) that is not one the gateway owns.
_HEADER_NAME = r"^[A-Za-z0-9-]{1,64}$"
_RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection",
                               "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "cookie",
                               "te", "upgrade", "keep-alive", "proxy-authorization"})


def _upstream_secret(name: str | None) -> str | None:
    # Any other setting (the admin key, the key pepper, connection strings) would ship to the server's host.
    if name is not None and not is_upstream_secret_name(name):
        raise ValueError(f"must name an app setting {UPSTREAM_SECRET_PREFIX}<NAME> (upper-case letters, digits, "
                         "_); the gateway's own settings can never be an upstream credential")
    return name


SecretSetting = Annotated[str, AfterValidator(_upstream_secret), Field(max_length=116, json_schema_extra={"pattern": UPSTREAM_SECRET_PATTERN},
                                     description="An app setting named UPSTREAM_SECRET_*; nothing else.")]


# ---- outbound auth: how the gateway authenticates to an upstream. The client's own credential is never sent.


class NoAuth(Contract):
    type: Literal["none"] = "none"


class UpstreamSecretAuth(Contract):
    type: Literal["upstream_secret"] = "upstream_secret"
    setting: SecretSetting
    header: str = Field(default="authorization", pattern=_HEADER_NAME)
    scheme: str | None = Field(default="Bearer", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                               description="Prefix of the header value ('Bearer'); null sends the raw secret.")

    @field_validator("header")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"'{name}' is set by the gateway itself; choose another header")
        return name.lower()


class OAuthClientCredentialsAuth(Contract):
    type: Literal["oauth_client_credentials"] = "oauth_client_credentials"
    token_url: HttpUrl
    client_id: str = Field(min_length=1, max_length=256)
    client_secret_setting: SecretSetting
    scope: str | None = Field(default=None, max_length=1024)
    audience: str | None = Field(default=None, max_length=512)


class ManagedIdentityAuth(Contract):
    type: Literal["managed_identity"] = "managed_identity"
    scope: str = Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9:/._~-]+$",
                       description="Entra resource scope, e.g. api://<app-id>/.default.")
    client_id: str | None = Field(default=None, max_length=64, description="A user-assigned identity's client id.")


OutboundAuth = Annotated[Union[NoAuth, UpstreamSecretAuth, OAuthClientCredentialsAuth, ManagedIdentityAuth],
                         Field(discriminator="type")]


class Timeouts(Contract):
    connect_seconds: float = Field(default=5, gt=0, le=60, allow_inf_nan=False)
    call_seconds: float = Field(default=60, gt=0, le=900, allow_inf_nan=False,
                                description="Default upper bound of one tools/call; a tool's limit may lower it.")


class ServerTarget(Contract):
    """One replica of a server: a failover target (lower priority first, weight within a priority)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: HttpUrl
    priority: int = Field(default=0, ge=0, le=1000)
    weight: int = Field(default=1, ge=1, le=1000)


class McpServerSpec(Contract):
    id: Slug
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    transport: Transport = Field(default="streamable_http", description=(
        "streamable_http; sse (legacy HTTP+SSE); stdio_bridge: the HTTP URL of a stdio-to-HTTP bridge "
        "(supergateway, mcp-proxy) in front of a stdio server."))
    url: HttpUrl
    auth: OutboundAuth = Field(default_factory=NoAuth)
    namespace: str = Field(pattern=NAMESPACE_PATTERN, description="Prefix of every tool name: <namespace>__<tool>.")
    replicas: list[ServerTarget] = Field(default_factory=list, max_length=16)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    tags: list[Tag] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _unique_targets(self) -> "McpServerSpec":
        ids = [r.id for r in self.replicas]
        if "primary" in ids or len(set(ids)) != len(ids):
            raise ValueError("replica ids must be unique and not 'primary'")
        return self


class McpServer(Entity):
    kind: ClassVar[str] = "mcp_server"
    spec: McpServerSpec
    lifecycle: Lifecycle = "draft"
    approval: ApprovalState = "unsubmitted"
    submitted_by: str | None = Field(default=None, max_length=256)

    def targets(self) -> list[ServerTarget]:
        """The primary URL first (priority 0), then the replicas: what failover walks."""
        return [ServerTarget(id="primary", url=self.spec.url), *self.spec.replicas]


# ---- OpenAPI-derived servers (API-to-MCP)


class ParamBinding(Contract):
    name: str = Field(min_length=1, max_length=128, description="Argument name in the tool's inputSchema.")
    wire_name: str = Field(min_length=1, max_length=128, description="Parameter name in the HTTP request.")
    location: Literal["path", "query", "header", "cookie"]


class ApiBinding(Contract):
    """How a tool call becomes one HTTP request; derived from the OpenAPI operation at registration."""

    api_source_id: Slug
    operation_id: str = Field(max_length=256)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    path: str = Field(min_length=1, max_length=2048, pattern=r"^/")
    params: list[ParamBinding] = Field(default_factory=list, max_length=128)
    body_argument: str | None = Field(default=None, max_length=128,
                                      description="The argument holding the request body, if any.")
    body_media_type: str | None = Field(default=None, max_length=128)


class ApiSourceSpec(Contract):
    id: Slug
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    document_url: HttpUrl | None = Field(default=None, description="Fetched through the egress policy.")
    document: dict[str, Any] | None = Field(default=None, description="Inline OpenAPI 3.0/3.1 document.")
    base_url: HttpUrl | None = Field(default=None, description="Default: the document's first server URL.")
    operations: list[Annotated[str, Field(min_length=1, max_length=2100)]] = Field(
        default_factory=list, max_length=256, description=(
        "operationIds (or 'METHOD /path') to expose; empty: every operation."))
    auth: OutboundAuth = Field(default_factory=NoAuth)
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    tags: list[Tag] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _one_document(self) -> "ApiSourceSpec":
        if (self.document_url is None) == (self.document is None):
            raise ValueError("give exactly one of document_url and document")
        return self


class ApiSource(Entity):
    kind: ClassVar[str] = "api_source"
    spec: ApiSourceSpec
    resolved_base_url: str | None = Field(default=None, max_length=2048)
    lifecycle: Lifecycle = "draft"
    approval: ApprovalState = "unsubmitted"
    submitted_by: str | None = Field(default=None, max_length=256)


# ---- tools


class ToolLimits(Contract):
    rate_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    timeout_seconds: float | None = Field(default=None, gt=0, le=900, allow_inf_nan=False)
    max_result_bytes: int | None = Field(default=None, ge=1, le=64 * 1024 * 1024)


class PinnedDefinition(Contract):
    """The parts of a tool definition that are pinned (hashed): what a client and a model see of the tool."""

    name: str = Field(max_length=256)
    title: str | None = Field(default=None, max_length=512)
    description: str | None = Field(default=None, max_length=16_384)
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class ToolSettings(Contract):
    """What an admin sets on a tool (PATCH …/tools/{name})."""

    sensitive: bool | None = None
    limits: ToolLimits | None = None
    tags: list[Tag] | None = Field(default=None, max_length=16)


class ToolDefinition(Entity):
    """A tool as approved. `id` is the namespaced name (unique in the project: namespaces are unique per
    project and collisions are refused at registration)."""

    kind: ClassVar[str] = "mcp_tool"
    server_id: Slug = Field(description="The McpServer or ApiSource the tool comes from.")
    source: Literal["mcp", "api"] = "mcp"
    original_name: str = Field(max_length=256)
    name: str = Field(pattern=NAMESPACED_NAME_PATTERN)
    definition: PinnedDefinition
    pinned_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$",
                                    description="Hash of the approved definition; None until approved.")
    drifted: PinnedDefinition | None = Field(default=None, description="Upstream definition that differs from "
                                             "the pinned one (the tool is quarantined until re-approved).")
    drifted_hash: str | None = None
    status: ToolStatus = "pending"
    status_reason: str = Field(default="", max_length=2000)
    sensitive: bool = False
    limits: ToolLimits = Field(default_factory=ToolLimits)
    tags: list[Tag] = Field(default_factory=list, max_length=16)
    binding: ApiBinding | None = None
    status_changed_at: datetime = Field(default_factory=utcnow)

    @field_validator("name")
    @classmethod
    def _namespaced(cls, name: str) -> str:
        if NAMESPACE_SEPARATOR not in name:
            raise ValueError("a tool name is <namespace>__<tool>")
        return name

    @property
    def namespace(self) -> str:
        return self.name.split(NAMESPACE_SEPARATOR, 1)[0]


# ---- toolboxes


class ToolboxOwner(Contract):
    type: Literal["project", "personal"] = "project"
    subject: str | None = Field(default=None, max_length=256, description="The developer of a personal toolbox.")

    @model_validator(mode="after")
    def _subject(self) -> "ToolboxOwner":
        if (self.type == "personal") != (self.subject is not None):
            raise ValueError("a personal toolbox names its subject; a project toolbox does not")
        return self


class ToolboxSpec(Contract):
    id: Slug
    description: str = Field(default="", max_length=2000)
    tools: list[Annotated[str, Field(pattern=NAMESPACED_NAME_PATTERN)]] = Field(default_factory=list,
                                                                                max_length=512)

    @field_validator("tools")
    @classmethod
    def _no_duplicates(cls, tools: list[str]) -> list[str]:
        return list(dict.fromkeys(tools))


class Toolbox(Entity):
    kind: ClassVar[str] = "toolbox"
    spec: ToolboxSpec
    owner: ToolboxOwner = Field(default_factory=ToolboxOwner)


# ---- approvals: submissions and the audit trail


class Finding(Contract):
    check: Literal["reachable", "speaks_mcp", "lists_tools", "schema_valid", "poisoning", "egress", "openapi",
                   "namespace"]
    severity: Literal["info", "warning", "error"]
    message: str = Field(max_length=2000)
    tool: str | None = Field(default=None, max_length=256)


SubmissionState = Literal["queued", "probing", "probed", "approved", "rejected", "poisoned"]


class StateChange(Contract):
    state: SubmissionState
    at: datetime
    by: str = Field(max_length=256)
    reason: str = Field(default="", max_length=2000)


class Submission(Entity):
    """A request to approve a server or API source; probed by the approvals queue function."""

    kind: ClassVar[str] = "tool_submission"
    subject_kind: Literal["mcp_server", "api_source"]
    subject_id: Slug
    submitted_by: str = Field(max_length=256)
    note: str = Field(default="", max_length=2000)
    state: SubmissionState = "queued"
    history: list[StateChange] = Field(default_factory=list, max_length=200)
    findings: list[Finding] = Field(default_factory=list, max_length=500)
    tools: list[PinnedDefinition] = Field(default_factory=list, max_length=1000,
                                          description="Tools the probe listed (original names).")
    bindings: dict[str, ApiBinding] = Field(default_factory=dict, description="API sources: how each tool "
                                            "(by original name) becomes an HTTP request.")
    server_info: dict[str, Any] = Field(default_factory=dict)
    probe_attempts: int = Field(default=0, ge=0, le=1000)
    probed_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$", description=(
        "Hash of the subject's definition the probe read (approvals.subject_hash); approval needs it current."))

    def enter(self, state: SubmissionState, by: str, reason: str = "", at: datetime | None = None) -> None:
        self.history = [*self.history[-199:], StateChange(state=state, at=at or utcnow(), by=by, reason=reason)]
        self.state = state

    def entered_at(self) -> datetime:
        return self.history[-1].at if self.history else self.created_at


ApprovalAction = Literal["submitted", "probed", "approved", "auto_approved", "rejected", "poisoned", "quarantined",
                         "reapproved", "tool_rejected", "policy_set"]


class ApprovalRecord(Entity):
    """One audit-trail entry: who did what to which subject, when and why. Append-only."""

    kind: ClassVar[str] = "approval_record"
    action: ApprovalAction
    subject_kind: Literal["mcp_server", "api_source", "mcp_tool", "tools_policy"]
    subject_id: str = Field(max_length=256)
    submission_id: str | None = Field(default=None, max_length=128)
    actor: str = Field(max_length=256)
    reason: str = Field(default="", max_length=2000)
    diff: list[dict[str, Any]] | None = Field(default=None, max_length=200)
    at: datetime = Field(default_factory=utcnow)


def is_namespaced_name(name: str) -> bool:
    return _NAMESPACED.fullmatch(name) is not None and NAMESPACE_SEPARATOR in name


_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")


def namespaced_name(namespace: str, original: str) -> str:
    """`<namespace>__<tool>` within 64 chars of [A-Za-z0-9_-]. Characters outside the set become '-'; a name too
    long is cut and suffixed with a digest of the original, so two long names stay distinct. Two originals that
    still map to one name are a collision, reported by the registration (never silently shadowed)."""
    import hashlib

    safe = _NOT_ALLOWED.sub("-", original) or "-"
    name = f"{namespace}{NAMESPACE_SEPARATOR}{safe}"
    if len(name) <= NAMESPACED_NAME_MAX:
        return name
    digest = hashlib.sha256(original.encode()).hexdigest()[:8]
    return f"{name[:NAMESPACED_NAME_MAX - 9]}-{digest}"


class ToolsPolicySpec(Contract):
    auto_approve_clean: bool = Field(default=False, description=(
        "Approve a submission whose probe found no error and no warning, without an admin."))


class ToolsPolicy(Entity):
    """A project's tools approval policy (one document per project)."""

    kind: ClassVar[str] = "tools_policy"
    DOC_ID: ClassVar[str] = "tools-policy"
    id: str = DOC_ID
    spec: ToolsPolicySpec = Field(default_factory=ToolsPolicySpec)
