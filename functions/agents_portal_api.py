"""Build: the agent catalog developers browse — what each published agent can do, its lifecycle, its owner and
where it runs. Drafts, suspended and retired agents are not listed (they take no calls)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.pillars.agents.domain import Agent, AgentSkill
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard

if TYPE_CHECKING:  # imported lazily: the pillar (and its cloud SDKs) load on first use
    from shared.pillars.agents.pillar import AgentsPillar


class CatalogAgent(BaseModel):
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

    @classmethod
    def of(cls, a: Agent) -> "CatalogAgent":
        s = a.spec
        return cls(id=a.id, name=s.name, description=s.description, lifecycle=a.lifecycle, owner=s.owner,
                   source=s.source, version=s.version, skills=s.skills, replacement=s.replacement,
                   card_url=f"/agents/{a.id}/.well-known/agent-card.json")


class CatalogAgents(BaseModel):
    items: list[CatalogAgent]


def build(pillar: Callable[[], AgentsPillar], projects: ProjectRegistry, developer: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    """`pillar`: the agents pillar, assembled on first use (inside the worker's event loop)."""
    api = ApiBlueprint("agents-portal", max_body_bytes=max_body_bytes)

    @api.route("portal/projects/{project}/agents", "GET", name="portal_agents",
               summary="The agents a developer can call: skills, lifecycle, owner and source cloud.",
               guard=developer, response=CatalogAgents)
    async def agents(call: Call):
        pid = call.path("project")
        await projects.get(pid)
        published = await pillar().directory.list_published(pid)
        return CatalogAgents(items=[CatalogAgent.of(a) for a in published])

    return api
