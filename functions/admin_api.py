"""Operate: projects and their pillar flags, and the global kill switches. Admin role only."""
from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from shared.domain.base import Pillar
from shared.domain.projects import FlagUpdate, GlobalFlagsOut, ProjectCreate, ProjectFlagsOut, ProjectOut, ProjectUpdate
from shared.errors import BadRequest, NotFound
from shared.flags.service import FlagService
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int
from shared.web.pages import INVALID_DOC, PageOut
from shared.web.responses import json_response

__all__ = ["CASCADE", "IF_MATCH", "INVALID_DOC", "PAGING", "build"]

PAGING = (("limit", "Page size, 1-200 (default 50)."), ("cursor", "Opaque cursor from the previous page."))
CASCADE = (("cascade", "true: also delete everything the project owns (keys, models, quotas, key requests)."),)
IF_MATCH = (("If-Match", "ETag of the version you read; a stale one is refused with 412."),)


class ProjectList(PageOut[ProjectOut]):
    pass


def query_bool(call: Call, name: str) -> bool:
    """Strict: only `true` or `false` (a typo must not silently mean the non-destructive default, or vice versa)."""
    raw = call.req.query_params.get(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequest(f"Query parameter '{name}' must be true or false.", code="invalid_query",
                     details=[{"field": name, "message": "true or false expected"}])


def pillar_of(call: Call) -> Pillar:
    raw = call.path("pillar")
    try:
        return Pillar(raw)
    except ValueError:
        raise NotFound(f"Unknown pillar '{raw}'; expected one of {[p.value for p in Pillar]}.",
                       code="unknown_pillar") from None


def with_etag(model: BaseModel, etag: str | None, status: int = 200):
    return json_response(model, status, {"etag": etag} if etag else None)


def build(registry: ProjectRegistry, admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("admin", max_body_bytes=max_body_bytes)
    views = FlagService.views

    @api.route("manage/projects", "POST", name="manage_create_project", summary="Create a project (tenant).",
               guard=admin, body=ProjectCreate, response=ProjectOut, status=201)
    async def create_project(call: Call):
        created = await registry.create(call.body)
        return with_etag(ProjectOut.of(created), created.etag, 201)

    @api.route("manage/projects", "GET", name="manage_list_projects", summary="List projects, paged.", guard=admin,
               response=ProjectList, query=PAGING)
    async def list_projects(call: Call):
        page = await registry.list(limit=query_int(call.req, "limit", 50, 1, 200),
                                   cursor=call.req.query_params.get("cursor") or None)
        return ProjectList(items=[ProjectOut.of(p) for p in page.items], next_cursor=page.cursor,
                           invalid=page.invalid)

    @api.route("manage/projects/{project}", "GET", name="manage_get_project", summary="Get a project.", guard=admin,
               response=ProjectOut)
    async def get_project(call: Call):
        p = await registry.get(call.path("project"))
        return with_etag(ProjectOut.of(p), p.etag)

    @api.route("manage/projects/{project}", "PATCH", name="manage_update_project",
               summary="Change a project's name, description or key issuance.", guard=admin, body=ProjectUpdate,
               response=ProjectOut, headers=IF_MATCH)
    async def update_project(call: Call):
        updated = await registry.update(call.path("project"), call.body, call.req.headers.get("if-match"))
        return with_etag(ProjectOut.of(updated), updated.etag)

    @api.route("manage/projects/{project}", "DELETE", name="manage_delete_project",
               summary="Delete a project. Without `cascade` only an empty one; with `cascade=true` the project and "
                       "everything it owns (traffic stops first; safe to run again if interrupted).",
               guard=admin, status=204, headers=IF_MATCH, query=CASCADE)
    async def delete_project(call: Call):
        await registry.delete(call.path("project"), cascade=query_bool(call, "cascade"),
                              if_match=call.req.headers.get("if-match"))
        return Response(status_code=204)

    @api.route("manage/projects/{project}/flags", "GET", name="manage_get_project_flags",
               summary="A project's pillar switches, with the global kill switches applied.", guard=admin,
               response=ProjectFlagsOut)
    async def get_project_flags(call: Call):
        pid = call.path("project")
        project = await registry.get(pid)
        return ProjectFlagsOut(project_id=pid, pillars=views(project, await registry.global_flags()))

    @api.route("manage/projects/{project}/flags/{pillar}", "PUT", name="manage_set_project_flag",
               summary="Enable or disable a pillar for a project. Registrations are kept either way.",
               guard=admin, body=FlagUpdate, response=ProjectFlagsOut, headers=IF_MATCH)
    async def set_project_flag(call: Call):
        pid = call.path("project")
        updated = await registry.set_project_flag(pid, pillar_of(call), call.body.enabled,
                                                  call.req.headers.get("if-match"))
        glob = await registry.global_flags()
        return with_etag(ProjectFlagsOut(project_id=pid, pillars=views(updated, glob)), updated.etag)

    @api.route("manage/flags", "GET", name="manage_get_global_flags", summary="Global kill switches per pillar.",
               guard=admin, response=GlobalFlagsOut)
    async def get_global_flags(call: Call):
        glob = await registry.global_flags()
        return with_etag(GlobalFlagsOut(pillars=glob.pillars, etag=glob.etag), glob.etag)

    @api.route("manage/flags/{pillar}", "PUT", name="manage_set_global_flag",
               summary="Global kill switch: disabling stops the pillar's traffic for every project.", guard=admin,
               body=FlagUpdate, response=GlobalFlagsOut, headers=IF_MATCH)
    async def set_global_flag(call: Call):
        updated = await registry.set_global_flag(pillar_of(call), call.body.enabled,
                                                 call.req.headers.get("if-match"))
        return with_etag(GlobalFlagsOut(pillars=updated.pillars, etag=updated.etag), updated.etag)

    return api
