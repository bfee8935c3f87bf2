"""Build: the agent catalog developers browse — what each published agent can do, its lifecycle, its owner and
where it runs (source, and the cloud connection of synced agents; a composite's mode and members). Drafts,
suspended and retired agents are not listed (they take no calls). And the agent playground: send a message
through the gateway with the developer's identity, see the reply, the task states and the governance trace."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.domain.base import AppModel
from shared.flags.service import FlagService
from shared.pillars.agents.domain import Agent, AgentSkill
from shared.pillars.agents.playground import AgentPlayground, AgentPlaygroundCall, AgentPlaygroundResult
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard

if TYPE_CHECKING:  # imported lazily: the pillar (and its cloud SDKs) load on first use
    from shared.pillars.agents.pillar import AgentsPillar


class CatalogAgent(AppModel):
    id: str
    name: str
    description: str
    lifecycle: str
    owner: str
    source: str
    version: str
    skills: list[AgentSkill]
    replacement: str | None
    card_url: str
    cloud_connection: str | None = None  # synced agents: the AGENTS_SYNC_CONNECTIONS entry they came from
    composition_mode: str | None = None  # composite agents: sequential | router
    members: list[str] = []

    @classmethod
    def of(cls, a: Agent) -> "CatalogAgent":
        s = a.spec
        comp = s.composition
        return cls(id=a.id, name=s.name, description=s.description, lifecycle=a.lifecycle, owner=s.owner,
                   source=s.source, version=s.version, skills=s.skills, replacement=s.replacement,
                   card_url=f"/agents/{a.id}/.well-known/agent-card.json",
                   cloud_connection=a.origin.connection if a.origin else None,
                   composition_mode=comp.mode if comp else None, members=comp.member_ids() if comp else [])


class CatalogAgents(AppModel):
    items: list[CatalogAgent]


def build(pillar: Callable[[], AgentsPillar], projects: ProjectRegistry, developer: Guard, *,
          max_body_bytes: int, flags: FlagService | None = None, front: Callable[[], Any] | None = None
          ) -> ApiBlueprint:
    """`pillar`: the agents pillar, assembled on first use (inside the worker's event loop); `front`: the A2A
    front (services.agents_front) the playground sends through."""
    api = ApiBlueprint("agents-portal", max_body_bytes=max_body_bytes)

    @api.route("portal/projects/{project}/agents", "GET", name="portal_agents",
               summary="The agents a developer can call: skills, lifecycle, owner and source cloud.",
               guard=developer, response=CatalogAgents)
    async def agents(call: Call):
        pid = call.path("project")
        await projects.get(pid)
        published = await pillar().directory.list_published(pid)
        return CatalogAgents(items=[CatalogAgent.of(a) for a in published])

    @api.route("portal/projects/{project}/agent-playground", "POST", name="portal_agent_playground",
               summary="Send a message to an agent through the gateway (your identity, the project's governance); "
                       "see the reply, the task states and the governance trace.", guard=developer,
               body=AgentPlaygroundCall, response=AgentPlaygroundResult)
    async def playground(call: Call):
        pid = call.path("project")
        await projects.get(pid)
        assert call.principal is not None and flags is not None and front is not None
        pg = AgentPlayground(pillar().directory, flags, front().run)
        return await pg.run(call.principal, pid, call.body)

    return api
