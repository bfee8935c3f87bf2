"""Build: the agent catalog developers browse — what each published agent can do, its lifecycle, its owner and
where it runs. Drafts, suspended and retired agents are not listed (they take no calls)."""
from __future__ import annotations

from pydantic import BaseModel

from shared.auth.guards import RoleGuard
from shared.auth.principal import Role
from shared.pillars.agents.domain import Agent, AgentSkill
from shared.services import Services
from shared.web.api import ApiBlueprint, Call


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


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("agents-portal", max_body_bytes=services.settings.max_admin_body_bytes)
    developer = RoleGuard(services.control_auth, Role.developer)

    @api.route("portal/projects/{project}/agents", "GET", name="portal_agents",
               summary="The agents a developer can call: skills, lifecycle, owner and source cloud.",
               guard=developer, response=CatalogAgents)
    async def agents(call: Call):
        pid = call.path("project")
        await services.projects.get(pid, pid)
        published = await services.agents.directory.list_published(pid)
        return CatalogAgents(items=[CatalogAgent.of(a) for a in published])

    return api
