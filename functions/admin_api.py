"""Operate: projects and their pillar flags, and the global kill switches. Admin role only."""
from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.responses import Response

from shared.auth.guards import RoleGuard
from shared.auth.principal import Role
from shared.domain.base import GLOBAL_PARTITION, InvalidDocument, Pillar
from shared.domain.keys import VirtualKey
from shared.domain.projects import (FlagUpdate, GlobalFlags, GlobalFlagsOut, Project, ProjectCreate, ProjectFlagsOut,
                                    ProjectOut, ProjectUpdate)
from shared.errors import AlreadyExists, BadRequest, Conflict, NotFound, ValidationFailed
from shared.services import Services
from shared.storage.purge import purge_project
from shared.web.api import ApiBlueprint, Call
from shared.web.inputs import query_int
from shared.web.responses import json_response

INVALID_DOC = "Stored documents on this page that no longer validate: skipped (not served); delete or replace them."
PAGING = (("limit", "Page size, 1-200 (default 50)."), ("cursor", "Opaque cursor from the previous page."))
CASCADE = (("cascade", "true: also delete everything the project owns (keys, models, quotas, key requests)."),)
IF_MATCH = (("If-Match", "ETag of the version you read; a stale one is refused with 412."),)


class ProjectList(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


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
        return ProjectList(items=[ProjectOut.of(p) for p in page.items], next_cursor=page.cursor,
                           invalid=page.invalid)

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
               summary="Delete a project. Without `cascade` only an empty one; with `cascade=true` the project and "
                       "everything it owns (traffic stops first; safe to run again if interrupted).",
               guard=admin, status=204, headers=IF_MATCH, query=CASCADE)
    async def delete_project(call: Call):
        pid = call.path("project")
        if_match = call.req.headers.get("if-match")
        try:
            if query_bool(call, "cascade"):
                await purge_project(services.projects, services.owned_by_project, pid, if_match=if_match,
                                    on_delete=forget_key)
                return Response(status_code=204)
            if await services.projects.find_raw(pid, pid) is None:
                raise NotFound(f"project '{pid}' does not exist.")
            for repo in services.owned_by_project:
                page = await repo.list(pid, limit=1)
                if page.items or page.invalid:  # a document that no longer validates is still owned
                    raise Conflict(f"Project '{pid}' still owns resources; delete or revoke and purge them first, "
                                   "or delete with ?cascade=true.", code="project_not_empty")
            await services.projects.delete(pid, pid, if_match)
        finally:  # also after a partial cascade: this instance must not serve from a stale cache
            flags.invalidate(pid)
            services.catalog.invalidate(pid)
            services.quota_book.invalidate(pid)
            services.guardrail_book.invalidate(pid)
        return Response(status_code=204)

    def forget_key(entity: object) -> None:
        if isinstance(entity, VirtualKey):
            services.key_service.forget(entity)

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
