"""Operate composite agents: define one from published agents (sequential or router, with its task budget), change
its composition, and see its members' current state. A composite is an ordinary agent (source `composite`): it
enters as draft, moves through the same lifecycle (`.../agents/{agent}/transitions`), and is served by the same
A2A front (card, SendMessage, SendStreamingMessage, GetTask). Admin role only."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import Field

from shared.domain.base import AppModel, Contract
from shared.errors import Conflict
from shared.pillars.agents.composition.contracts import Composition
from shared.pillars.agents.domain import INVOCABLE, AgentId, AgentLimits, AgentOut, AgentSkill, AgentSpec
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

from .admin_api import IF_MATCH
from .agents_admin_api import actor

if TYPE_CHECKING:
    from shared.pillars.agents.pillar import AgentsPillar


class CompositeRegister(Contract):
    id: AgentId
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    owner: str = Field(default="", max_length=200)
    version: str = Field(default="", max_length=64)
    composition: Composition
    skills: list[AgentSkill] | None = Field(default=None, max_length=128,
                                            description="What the card advertises; default: the members' skills.")
    limits: AgentLimits = Field(default_factory=AgentLimits)


class MemberState(AppModel):
    id: str
    exists: bool
    lifecycle: str | None = None
    source: str | None = None
    invocable: bool = False


class CompositionView(AppModel):
    agent: str
    lifecycle: str
    composition: Composition
    members: list[MemberState] = Field(description="Each member's state now; a non-invocable member makes the "
                                                   "tasks that reach it fail with member_refused.")


def build(agents: Callable[[], AgentsPillar], projects: ProjectRegistry, admin: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("agents-composition", max_body_bytes=max_body_bytes)

    async def composite(pid: str, aid: str):
        agent = await agents().repos.agents.get(pid, aid)
        if agent.spec.composition is None:
            raise Conflict(f"Agent '{aid}' is not a composite agent.", code="not_a_composite")
        return agent

    @api.route("manage/projects/{project}/agents/composites", "POST", name="manage_create_composite_agent",
               summary="Define a composite agent from published agents (sequential or router, one budget per task). "
                       "It enters as draft.", guard=admin, body=CompositeRegister, response=AgentOut, status=201)
    async def create(call: Call):
        pid, b = await projects.require(call.path("project")), call.body
        pillar = agents()
        skills = b.skills
        if skills is None:  # the members' skills, first one of each id wins
            seen: dict[str, AgentSkill] = {}
            for mid in b.composition.member_ids():
                member = await pillar.repos.agents.find(pid, mid)
                for s in member.spec.skills if member is not None else []:
                    seen.setdefault(s.id, s)
            skills = list(seen.values())[:128]
        spec = AgentSpec(name=b.name, description=b.description, owner=b.owner, version=b.version,
                         source="composite", composition=b.composition, skills=skills, limits=b.limits)
        agent = await pillar.registry.register(pid, b.id, spec, actor(call.principal))
        pillar.directory.invalidate(pid, agent.id)
        return json_response(AgentOut.of(agent), 201, {"etag": agent.etag or ""})

    @api.route("manage/projects/{project}/agents/{agent}/composition", "GET", name="manage_get_composition",
               summary="A composite agent's composition and its members' current state.", guard=admin,
               response=CompositionView)
    async def view(call: Call):
        pid = await projects.require(call.path("project"))
        agent = await composite(pid, call.path("agent"))
        comp = agent.spec.composition
        assert comp is not None
        members = []
        for mid in comp.member_ids():
            m = await agents().repos.agents.find(pid, mid)
            members.append(MemberState(id=mid, exists=m is not None, lifecycle=m.lifecycle if m else None,
                                       source=m.spec.source if m else None,
                                       invocable=m is not None and m.lifecycle in INVOCABLE))
        return CompositionView(agent=agent.id, lifecycle=agent.lifecycle, composition=comp, members=members)

    @api.route("manage/projects/{project}/agents/{agent}/composition", "PUT", name="manage_set_composition",
               summary="Replace a composite agent's composition (members must be published; cycles are refused).",
               guard=admin, body=Composition, response=AgentOut, headers=IF_MATCH)
    async def replace(call: Call):
        pid, aid = await projects.require(call.path("project")), call.path("agent")
        agent = await composite(pid, aid)
        spec = agent.spec.model_copy(update={"composition": call.body})
        saved, _ = await agents().registry.update(pid, aid, spec, actor(call.principal),
                                                  if_match=call.req.headers.get("if-match"))
        agents().directory.invalidate(pid, aid)
        return json_response(AgentOut.of(saved), 200, {"etag": saved.etag or ""})

    return api
