"""Operate agents: register (card URL or by hand), update, lifecycle transitions with their audit trail, the
project's agents policy, and the cloud sync (runs and a manual trigger). Admin role only."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from typing import Literal

from pydantic import Field, HttpUrl, model_validator

from shared.auth.principal import Principal
from shared.domain.base import AppModel, Contract, InvalidDocument
from shared.errors import BadRequest, InvalidStoredDocument
from shared.pillars.agents.domain import (AgentId, AgentLimits, AgentOut, AgentSpec, Lifecycle, LifecycleEvent,
                                          OutboundAuth, SyncRun)
from shared.pillars.agents.policy import AgentsPolicy, AgentsPolicySpec
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int
from shared.web.responses import json_response

from .admin_api import IF_MATCH, INVALID_DOC, PAGING

if TYPE_CHECKING:  # imported lazily: the pillar (and its cloud SDKs) load on first use
    from shared.pillars.agents.pillar import AgentsPillar

LIFECYCLE_FILTER = (("lifecycle", "Only agents in this state (draft|published|deprecated|retired|suspended)."),)


class AgentRegister(Contract):
    """Either `card_url` (the card is fetched through the egress policy and validated) or `spec` (by hand)."""

    id: AgentId
    card_url: HttpUrl | None = None
    spec: AgentSpec | None = None
    # With card_url: what the card cannot say (how the gateway authenticates upstream, limits, owner).
    auth: OutboundAuth | None = None
    limits: AgentLimits | None = None
    owner: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> "AgentRegister":
        if (self.card_url is None) == (self.spec is None):
            raise ValueError("give exactly one of card_url or spec")
        return self


class Transition(Contract):
    to: Lifecycle
    reason: str = Field(default="", max_length=2000)
    replacement: AgentId | None = Field(default=None, description="When deprecating: the agent to use instead.")


class AgentList(AppModel):
    items: list[AgentOut]
    next_cursor: str | None
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class TransitionResult(AppModel):
    agent: AgentOut
    warnings: list[str] = Field(default_factory=list, description="E.g. the source could not be stopped.")


class EventOut(AppModel):
    id: str
    agent_id: str
    action: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    at: str
    changes: list[dict]

    @classmethod
    def of(cls, e: LifecycleEvent) -> "EventOut":
        return cls(id=e.id, agent_id=e.agent_id, action=e.action, from_state=e.from_state, to_state=e.to_state,
                   actor=e.actor, reason=e.reason, at=e.at.isoformat(),
                   changes=[c.model_dump(mode="json") for c in e.changes])


class EventList(AppModel):
    items: list[EventOut]
    next_cursor: str | None


class SyncRunList(AppModel):
    items: list[dict]
    next_cursor: str | None
    connections: list[dict] = Field(description="The connections feeding this project (no secrets).")


class SyncTrigger(Contract):
    cloud: Literal["bedrock", "vertex"] | None = Field(default=None, description="Default: every cloud.")
    connection: str | None = Field(default=None, max_length=40)


class SyncTriggered(AppModel):
    runs: list[dict]


def actor(p: Principal | None) -> str:
    return f"{p.kind}:{p.subject}" if p else "unknown"


def run_out(r: SyncRun) -> dict:
    return {"id": r.id, **r.model_dump(mode="json", exclude={"id", "created_at", "updated_at"})}


def build(agents: Callable[[], AgentsPillar], projects: ProjectRegistry, admin: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    """`agents`: the pillar, assembled on first use (inside the worker's event loop)."""
    api = ApiBlueprint("agents-admin", max_body_bytes=max_body_bytes)

    def pillar():
        return agents()

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    def out(agent, status: int = 200, extra: dict | None = None):
        pillar().directory.invalidate(agent.project_id, agent.id)
        return json_response(AgentOut.of(agent), status, {"etag": agent.etag or "", **(extra or {})})

    @api.route("manage/projects/{project}/agents", "POST", name="manage_register_agent",
               summary="Register an agent by A2A card URL (fetched through the egress policy, validated: v1.0 or "
                       "v0.3) or by hand. It enters as draft.", guard=admin, body=AgentRegister, response=AgentOut,
               status=201)
    async def register(call: Call):
        pid, body = await project_of(call), call.body
        reg = pillar().registry
        if body.spec is not None:
            agent = await reg.register(pid, body.id, body.spec, actor(call.principal))
        else:
            keep = {"owner": body.owner, "auth": body.auth, "limits": body.limits}
            agent = await reg.register_from_card(pid, body.id, str(body.card_url), actor(call.principal), keep)
        return out(agent, 201)

    @api.route("manage/projects/{project}/agents", "GET", name="manage_list_agents", summary="List agents.",
               guard=admin, response=AgentList, query=PAGING + LIFECYCLE_FILTER)
    async def list_agents(call: Call):
        pid = await project_of(call)
        state = call.req.query_params.get("lifecycle")
        if state is not None and state not in ("draft", "published", "deprecated", "retired", "suspended"):
            raise BadRequest("Unknown lifecycle filter.", code="invalid_query",
                             details=[{"field": "lifecycle", "message": "not a lifecycle state"}])
        page = await pillar().repos.agents.list(pid, limit=query_int(call.req, "limit", 50, 1, 200),
                                                cursor=call.req.query_params.get("cursor") or None,
                                                **({"lifecycle": state} if state else {}))
        return AgentList(items=[AgentOut.of(a) for a in page.items], next_cursor=page.cursor, invalid=page.invalid)

    @api.route("manage/projects/{project}/agents/{agent}", "GET", name="manage_get_agent", summary="Get an agent.",
               guard=admin, response=AgentOut)
    async def get_agent(call: Call):
        a = await pillar().repos.agents.get(call.path("project"), call.path("agent"))
        return json_response(AgentOut.of(a), 200, {"etag": a.etag or ""})

    @api.route("manage/projects/{project}/agents/{agent}", "PUT", name="manage_replace_agent",
               summary="Replace an agent's definition (its lifecycle changes only through transitions).",
               guard=admin, body=AgentSpec, response=AgentOut, headers=IF_MATCH)
    async def replace_agent(call: Call):
        pid, aid = call.path("project"), call.path("agent")
        try:
            agent, _ = await pillar().registry.update(pid, aid, call.body, actor(call.principal),
                                                      if_match=call.req.headers.get("if-match"))
        except InvalidStoredDocument:  # the stored version no longer validates: a full PUT repairs it
            from shared.pillars.agents.domain import Agent

            for check in pillar().registry.spec_checks:  # a repair is still a write: same checks (compositions)
                await check(pid, aid, call.body)
            agent = await pillar().repos.agents.rewrite(Agent(id=aid, project_id=pid, spec=call.body),
                                                        call.req.headers.get("if-match"))
        return out(agent)

    @api.route("manage/projects/{project}/agents/{agent}/refresh", "POST", name="manage_refresh_agent_card",
               summary="Fetch the agent's card again and record what changed.", guard=admin, response=AgentOut,
               headers=IF_MATCH)
    async def refresh(call: Call):
        agent, _ = await pillar().registry.refresh_card(call.path("project"), call.path("agent"),
                                                        actor(call.principal), call.req.headers.get("if-match"))
        return out(agent)

    @api.route("manage/projects/{project}/agents/{agent}/transitions", "POST", name="manage_transition_agent",
               summary="Move an agent through its lifecycle: draft → published → deprecated → retired; suspended "
                       "is the kill switch. Invalid moves are 409.", guard=admin, body=Transition,
               response=TransitionResult, headers=IF_MATCH)
    async def transition(call: Call):
        body = call.body
        agent, warnings = await pillar().registry.transition(
            call.path("project"), call.path("agent"), body.to, actor(call.principal), reason=body.reason,
            replacement=body.replacement, if_match=call.req.headers.get("if-match"))
        pillar().directory.invalidate(agent.project_id, agent.id)
        return json_response(TransitionResult(agent=AgentOut.of(agent), warnings=warnings), 200,
                             {"etag": agent.etag or ""})

    @api.route("manage/projects/{project}/agents/{agent}/transitions", "GET", name="manage_agent_history",
               summary="The agent's audit trail: who changed what, when and why.", guard=admin, response=EventList,
               query=PAGING)
    async def history(call: Call):
        pid, aid = call.path("project"), call.path("agent")
        await pillar().repos.agents.get(pid, aid)
        page = await pillar().registry.history(pid, aid, limit=query_int(call.req, "limit", 100, 1, 200),
                                               cursor=call.req.query_params.get("cursor") or None)
        items = sorted((EventOut.of(e) for e in page.items), key=lambda e: e.at)
        return EventList(items=items, next_cursor=page.cursor)

    @api.route("manage/projects/{project}/agent-policy", "GET", name="manage_get_agents_policy",
               summary="The project's agents policy (whether synced agents are published at once).", guard=admin,
               response=AgentsPolicySpec)
    async def get_policy(call: Call):
        policy = await pillar().policy(await project_of(call))
        return AgentsPolicySpec(publish_synced=policy.publish_synced)

    @api.route("manage/projects/{project}/agent-policy", "PUT", name="manage_set_agents_policy",
               summary="Set the project's agents policy.", guard=admin, body=AgentsPolicySpec,
               response=AgentsPolicySpec)
    async def set_policy(call: Call):
        pid, repo = await project_of(call), pillar().policies
        found = await repo.find(pid, AgentsPolicy.DOC_ID)
        if found is None:
            await repo.create(AgentsPolicy(project_id=pid, publish_synced=call.body.publish_synced))
        else:
            await repo.update(pid, AgentsPolicy.DOC_ID, lambda p: setattr(p, "publish_synced",
                                                                            call.body.publish_synced))
        return call.body

    @api.route("manage/projects/{project}/agent-sync/runs", "GET", name="manage_list_sync_runs",
               summary="Cloud sync runs of this project: counts, duration, errors.", guard=admin,
               response=SyncRunList, query=PAGING)
    async def runs(call: Call):
        pid = await project_of(call)
        page = await pillar().repos.runs.list(pid, limit=query_int(call.req, "limit", 50, 1, 200),
                                              cursor=call.req.query_params.get("cursor") or None)
        items = sorted((run_out(r) for r in page.items), key=lambda r: r["started_at"], reverse=True)
        conns = [c.model_dump(mode="json", include={"name", "cloud", "enabled", "region", "gcp_project",
                                                    "location", "suspend_at_source"})
                 for c in pillar().connections if c.project == pid]
        return SyncRunList(items=items, next_cursor=page.cursor, connections=conns)

    @api.route("manage/projects/{project}/agent-sync", "POST", name="manage_trigger_sync",
               summary="Run this project's sync connections now (each records its run).", guard=admin,
               body=SyncTrigger, response=SyncTriggered)
    async def trigger(call: Call):
        pid, body = await project_of(call), call.body
        conns = [c for c in pillar().connections if c.project == pid and c.enabled
                 and (body.cloud is None or c.cloud == body.cloud)
                 and (body.connection is None or c.name == body.connection)]
        runs = []
        for c in conns:
            runs += await pillar().sync(c.cloud, trigger="manual", only=c.name)
        pillar().directory.invalidate(pid)
        return SyncTriggered(runs=[run_out(r) for r in runs])

    return api
