"""Build: what a developer sees — who they are and which projects and pillars are open to them."""
from __future__ import annotations

from pydantic import BaseModel

from shared.domain.base import Pillar
from shared.flags.service import FlagService
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard


class Me(BaseModel):
    subject: str
    name: str | None
    roles: list[str]
    via: str


class CatalogProject(BaseModel):
    id: str
    name: str
    description: str
    pillars: list[Pillar]


class CatalogProjects(BaseModel):
    items: list[CatalogProject]
    next_cursor: str | None


def build(projects: ProjectRegistry, flags: FlagService, developer: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("portal", max_body_bytes=max_body_bytes)

    @api.route("portal/me", "GET", name="portal_me", summary="The signed-in principal and its roles.",
               guard=developer, response=Me)
    async def me(call: Call):
        p = call.principal
        assert p is not None
        return Me(subject=p.subject, name=p.name, roles=sorted(r.value for r in p.roles), via=p.kind)

    @api.route("portal/projects", "GET", name="portal_projects",
               summary="Projects and the pillars that are currently open for traffic.", guard=developer,
               response=CatalogProjects, query=(("cursor", "Opaque cursor from the previous page."),))
    async def list_projects(call: Call):
        page = await projects.list(limit=100, cursor=call.req.query_params.get("cursor") or None)
        glob = await flags.global_flags()
        items = [CatalogProject(id=p.id, name=p.name, description=p.description,
                                pillars=[k for k, v in flags.views(p, glob).items() if v.effective])
                 for p in page.items]
        return CatalogProjects(items=items, next_cursor=page.cursor)

    return api
