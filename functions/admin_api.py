"""Operate: projects and their pillar flags, and the global kill switches. Admin role only."""
from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from shared.auth.guards import RoleGuard
from shared.auth.principal import Role
from shared.domain.base import GLOBAL_PARTITION, Pillar
from shared.domain.projects import (FlagUpdate, GlobalFlags, GlobalFlagsOut, Project, ProjectCreate, ProjectFlagsOut,
                                    ProjectOut, ProjectUpdate)
from shared.errors import AlreadyExists, Conflict, NotFound, ValidationFailed
from shared.services import Services
from shared.web.api import ApiBlueprint, Call
from shared.web.inputs import query_int
from shared.web.responses import json_response

PAGING = (("limit", "Page size, 1-200 (default 50)."), ("cursor", "Opaque cursor from the previous page."))
IF_MATCH = (("If-Match", "ETag of the version you read; a stale one is refused with 412."),)


class ProjectList(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None


def pillar_of(call: Call) -> Pillar:
    raw = call.path("pillar")
    try:
        return Pillar(raw)
    except ValueError:
        raise NotFound(f"Unknown pillar '{raw}'; expected one of {[p.value for p in Pillar]}.",
                       code="unknown_pillar") from None


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("admin", max_body_bytes=services.settings.max_admin_body_bytes)
    admin = RoleGuard(services.control_auth, Role.admin)
    flags = services.flags

    def with_etag(model: BaseModel, etag: str | None, status: int = 200):
        return json_response(model, status, {"etag": etag} if etag else None)

    @api.route("manage/projects", "POST", name="manage_create_project", summary="Create a project (tenant).",
               guard=admin, body=ProjectCreate, response=ProjectOut, status=201)
    async def create_project(call: Call):
        spec: ProjectCreate = call.body
        project = Project(id=spec.id, name=spec.name, description=spec.description, key_issuance=spec.key_issuance,
                          log_payloads=spec.log_payloads,
                          **({"pillars": spec.pillars} if spec.pillars else {}))
        try:
            created = await services.projects.create(project)
        except AlreadyExists:
            raise AlreadyExists(f"Project '{spec.id}' already exists.", details={"field": "id"}) from None
        flags.invalidate(created.id)
        return with_etag(ProjectOut.of(created), created.etag, 201)

    @api.route("manage/projects", "GET", name="manage_list_projects", summary="List projects, paged.", guard=admin,
               response=ProjectList, query=PAGING)
    async def list_projects(call: Call):
        page = await services.projects.list(None, limit=query_int(call.req, "limit", 50, 1, 200),
                                            cursor=call.req.query_params.get("cursor") or None)
        return ProjectList(items=[ProjectOut.of(p) for p in page.items], next_cursor=page.cursor)

    @api.route("manage/projects/{project}", "GET", name="manage_get_project", summary="Get a project.", guard=admin,
               response=ProjectOut)
    async def get_project(call: Call):
        p = await services.projects.get(call.path("project"), call.path("project"))
        return with_etag(ProjectOut.of(p), p.etag)

    @api.route("manage/projects/{project}", "PATCH", name="manage_update_project",
               summary="Change a project's name, description or key issuance.", guard=admin, body=ProjectUpdate,
               response=ProjectOut, headers=IF_MATCH)
    async def update_project(call: Call):
        change: ProjectUpdate = call.body
        pid = call.path("project")

        def apply(p: Project) -> None:
            for field, value in change.model_dump(exclude_unset=True).items():
                if value is None:
                    raise ValidationFailed(f"'{field}' cannot be null.", details=[{"field": field,
                                                                                  "message": "null"}])
                setattr(p, field, value)

        updated = await services.projects.update(pid, pid, apply, if_match=call.req.headers.get("if-match"))
        flags.invalidate(pid)
        return with_etag(ProjectOut.of(updated), updated.etag)

    @api.route("manage/projects/{project}", "DELETE", name="manage_delete_project",
               summary="Delete an empty project (one that owns no other resource).", guard=admin, status=204,
               headers=IF_MATCH)
    async def delete_project(call: Call):
        pid = call.path("project")
        await services.projects.get(pid, pid)
        if any([(await repo.list(pid, limit=1)).items for repo in services.owned_by_project]):
            raise Conflict(f"Project '{pid}' still owns resources; delete or revoke them first.",
                           code="project_not_empty")
        await services.projects.delete(pid, pid, call.req.headers.get("if-match"))
        flags.invalidate(pid)
        return Response(status_code=204)

    @api.route("manage/projects/{project}/flags", "GET", name="manage_get_project_flags",
               summary="A project's pillar switches, with the global kill switches applied.", guard=admin,
               response=ProjectFlagsOut)
    async def get_project_flags(call: Call):
        pid = call.path("project")
        project = await services.projects.get(pid, pid)
        glob = await services.global_flags.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) or GlobalFlags()
        return ProjectFlagsOut(project_id=pid, pillars=flags.views(project, glob))

    @api.route("manage/projects/{project}/flags/{pillar}", "PUT", name="manage_set_project_flag",
               summary="Enable or disable a pillar for a project. Registrations are kept either way.",
               guard=admin, body=FlagUpdate, response=ProjectFlagsOut, headers=IF_MATCH)
    async def set_project_flag(call: Call):
        pid, pillar, enabled = call.path("project"), pillar_of(call), call.body.enabled

        def apply(p: Project) -> None:
            p.pillars[pillar].enabled = enabled

        updated = await services.projects.update(pid, pid, apply, if_match=call.req.headers.get("if-match"))
        flags.invalidate(pid)
        glob = await services.global_flags.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) or GlobalFlags()
        return with_etag(ProjectFlagsOut(project_id=pid, pillars=flags.views(updated, glob)), updated.etag)

    @api.route("manage/flags", "GET", name="manage_get_global_flags", summary="Global kill switches per pillar.",
               guard=admin, response=GlobalFlagsOut)
    async def get_global_flags(call: Call):
        glob = await services.global_flags.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) or GlobalFlags()
        return with_etag(GlobalFlagsOut(pillars=glob.pillars, etag=glob.etag), glob.etag)

    @api.route("manage/flags/{pillar}", "PUT", name="manage_set_global_flag",
               summary="Global kill switch: disabling stops the pillar's traffic for every project.", guard=admin,
               body=FlagUpdate, response=GlobalFlagsOut, headers=IF_MATCH)
    async def set_global_flag(call: Call):
        pillar, enabled = pillar_of(call), call.body.enabled
        repo = services.global_flags
        if await repo.find(GLOBAL_PARTITION, GlobalFlags.DOC_ID) is None:
            try:
                await repo.create(GlobalFlags())
            except AlreadyExists:
                pass  # another admin created it first; the conditional update below still applies

        def apply(g: GlobalFlags) -> None:
            g.pillars[pillar].enabled = enabled

        updated = await repo.update(GLOBAL_PARTITION, GlobalFlags.DOC_ID, apply,
                                    if_match=call.req.headers.get("if-match"))
        flags.invalidate(None)
        return with_etag(GlobalFlagsOut(pillars=updated.pillars, etag=updated.etag), updated.etag)

    return api
