"""Operate: guardrail (RAI) policies of a project, attached to the project, a key or one resource of a pillar."""
from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from shared.domain.keys import VirtualKey
from shared.egress import EgressPolicy
from shared.errors import AlreadyExists, BadRequest, InvalidStoredDocument
from shared.guardrails.policy import ContentSafetyCheck, GuardrailPolicy, PolicyList, PolicyOut, PolicySpec
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

from .admin_api import IF_MATCH

if TYPE_CHECKING:  # the guardrail engine (compiled checks) loads with the book, on first use
    from shared.guardrails.book import GuardrailBook

PROPAGATION = (" Takes effect at once on the instance that served this call, on every other instance within "
               "FLAG_CACHE_TTL_SECONDS.")


def build(policies: Repository[GuardrailPolicy], book: GuardrailBook, projects: ProjectRegistry,
          keys: Repository[VirtualKey], egress: EgressPolicy, admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("guardrails-admin", max_body_bytes=max_body_bytes)
    repo = policies

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    async def check_spec(pid: str, spec: PolicySpec) -> None:
        a = spec.attach
        if a.scope == "key":
            await keys.get(pid, a.key_id or "")
        for i, c in enumerate(spec.checks):
            if isinstance(c, ContentSafetyCheck):  # the same egress policy as model backends
                await egress.check(str(c.endpoint), f"checks.{i}.endpoint")

    def out(p: GuardrailPolicy, status: int = 200) -> Response:
        return json_response(PolicyOut.of(p), status, {"etag": p.etag or ""})

    @api.route("manage/projects/{project}/guardrails", "POST", name="manage_create_guardrail",
               summary="Create a guardrail policy (checks + an action per check) attached to the project, a key or "
                       "a resource (pillar + name)." + PROPAGATION, guard=admin, body=PolicySpec, response=PolicyOut,
               status=201)
    async def create_policy(call: Call):
        pid, spec = await project_of(call), call.body
        await check_spec(pid, spec)
        try:
            saved = await repo.create(GuardrailPolicy(id=spec.id, project_id=pid, spec=spec))
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise
            raise AlreadyExists(f"Guardrail policy '{spec.id}' already exists in project '{pid}'.",
                                details=[{"field": "id", "message": "taken"}]) from None
        book.invalidate(pid)
        return out(saved, 201)

    @api.route("manage/projects/{project}/guardrails", "GET", name="manage_list_guardrails",
               summary="A project's guardrail policies.", guard=admin, response=PolicyList)
    async def list_policies(call: Call):
        pid = await project_of(call)
        page = await repo.list(pid, limit=200)
        return PolicyList(items=[PolicyOut.of(p) for p in page.items], invalid=page.invalid)

    @api.route("manage/projects/{project}/guardrails/{policy}", "GET", name="manage_get_guardrail",
               summary="Get a guardrail policy.", guard=admin, response=PolicyOut)
    async def get_policy(call: Call):
        return out(await repo.get(call.path("project"), call.path("policy")))

    @api.route("manage/projects/{project}/guardrails/{policy}", "PUT", name="manage_replace_guardrail",
               summary="Replace a guardrail policy (id unchanged)." + PROPAGATION, guard=admin, body=PolicySpec,
               response=PolicyOut, headers=IF_MATCH)
    async def replace_policy(call: Call):
        pid, pol, spec = call.path("project"), call.path("policy"), call.body
        if spec.id != pol:
            raise BadRequest("The policy id in the body must match the URL.", code="id_mismatch",
                             details=[{"field": "id", "message": f"expected '{pol}'"}])
        await check_spec(pid, spec)
        if_match = call.req.headers.get("if-match")
        try:
            saved = await repo.update(pid, pol, lambda p: setattr(p, "spec", spec), if_match=if_match)
        except InvalidStoredDocument:  # a full PUT repairs a stored policy that no longer validates
            saved = await repo.rewrite(GuardrailPolicy(id=pol, project_id=pid, spec=spec), if_match)
        book.invalidate(pid)
        return out(saved)

    @api.route("manage/projects/{project}/guardrails/{policy}", "DELETE", name="manage_delete_guardrail",
               summary="Delete a guardrail policy." + PROPAGATION, guard=admin, status=204, headers=IF_MATCH)
    async def delete_policy(call: Call):
        pid = call.path("project")
        await repo.delete(pid, call.path("policy"), call.req.headers.get("if-match"))
        book.invalidate(pid)
        return Response(status_code=204)

    return api
