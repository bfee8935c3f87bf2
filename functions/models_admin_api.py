"""Operate: register models (public name → backend pool) and attach quotas to a project, a key or a model."""
from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.responses import Response

from shared.auth.guards import RoleGuard
from shared.auth.principal import Role
from shared.domain.base import InvalidDocument
from shared.pillars.models.domain import Model, ModelOut, ModelSpec
from shared.domain.quotas import Quota, QuotaLimits, QuotaList, QuotaOut
from shared.errors import AlreadyExists, BadRequest, InvalidStoredDocument, NotFound, ValidationFailed
from shared.services import Services
from shared.web.api import ApiBlueprint, Call
from shared.web.responses import json_response

from .admin_api import IF_MATCH, INVALID_DOC


class ModelList(BaseModel):
    items: list[ModelOut]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


def scope_of(call: Call) -> str:
    scope = call.path("scope")
    if scope not in ("project", "key", "model"):
        raise NotFound(f"Unknown quota scope '{scope}'; use project, key or model.", code="unknown_scope")
    return scope


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("models-admin", max_body_bytes=services.settings.max_admin_body_bytes)
    admin = RoleGuard(services.control_auth, Role.admin)

    async def project_of(call: Call) -> str:
        pid = call.path("project")
        await services.projects.get(pid, pid)
        return pid

    async def check_spec(spec: ModelSpec) -> None:
        ids = [b.id for b in spec.backends]
        if len(ids) != len(set(ids)):
            raise ValidationFailed("Backend ids must be unique within a model.",
                                   details=[{"field": "backends", "message": "duplicate id"}])
        for i, b in enumerate(spec.backends):
            await services.egress.check(str(b.endpoint), f"backends.{i}.endpoint")

    def changed(pid: str) -> None:
        services.catalog.invalidate(pid)

    @api.route("manage/projects/{project}/models", "POST", name="manage_create_model",
               summary="Register a model: a public name mapped to a pool of backends.", guard=admin, body=ModelSpec,
               response=ModelOut, status=201)
    async def create_model(call: Call):
        pid, spec = await project_of(call), call.body
        await check_spec(spec)
        try:
            model = await services.models.create(Model(id=spec.name, project_id=pid, spec=spec))
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise  # the name is the id of another kind of resource in this project
            raise AlreadyExists(f"Model '{spec.name}' already exists in project '{pid}'.",
                                details=[{"field": "name", "message": "taken"}]) from None
        changed(pid)
        return json_response(ModelOut.of(model), 201, {"etag": model.etag or ""})

    @api.route("manage/projects/{project}/models", "GET", name="manage_list_models", summary="List models.",
               guard=admin, response=ModelList)
    async def list_models(call: Call):
        pid = await project_of(call)
        models, invalid = await services.catalog.fresh(pid)
        return ModelList(items=[ModelOut.of(m) for m in models], invalid=invalid)

    @api.route("manage/projects/{project}/models/{model}", "GET", name="manage_get_model", summary="Get a model.",
               guard=admin, response=ModelOut)
    async def get_model(call: Call):
        m = await services.models.get(call.path("project"), call.path("model"))
        return json_response(ModelOut.of(m), 200, {"etag": m.etag or ""})

    @api.route("manage/projects/{project}/models/{model}", "PUT", name="manage_replace_model",
               summary="Replace a model's definition (name unchanged).", guard=admin, body=ModelSpec,
               response=ModelOut, headers=IF_MATCH)
    async def replace_model(call: Call):
        pid, name, spec = call.path("project"), call.path("model"), call.body
        if spec.name != name:
            raise BadRequest("The model name in the body must match the URL.", code="name_mismatch",
                             details=[{"field": "name", "message": f"expected '{name}'"}])
        await check_spec(spec)
        if_match = call.req.headers.get("if-match")
        try:
            model = await services.models.update(pid, name, lambda m: setattr(m, "spec", spec), if_match=if_match)
        except InvalidStoredDocument:  # the stored version no longer validates: a full PUT repairs it
            model = await services.models.rewrite(Model(id=name, project_id=pid, spec=spec), if_match)
        changed(pid)
        return json_response(ModelOut.of(model), 200, {"etag": model.etag or ""})

    @api.route("manage/projects/{project}/models/{model}", "DELETE", name="manage_delete_model",
               summary="Delete a model.", guard=admin, status=204, headers=IF_MATCH)
    async def delete_model(call: Call):
        pid = call.path("project")
        await services.models.delete(pid, call.path("model"), call.req.headers.get("if-match"))
        changed(pid)
        return Response(status_code=204)

    @api.route("manage/projects/{project}/quotas", "GET", name="manage_list_quotas",
               summary="Quotas of a project (its own, its keys' and its models').", guard=admin, response=QuotaList)
    async def list_quotas(call: Call):
        pid = await project_of(call)
        page = await services.quotas.list(pid, limit=200)
        return QuotaList(items=[QuotaOut.of(q) for q in page.items], invalid=page.invalid)

    @api.route("manage/projects/{project}/quotas/{scope}/{target}", "PUT", name="manage_set_quota",
               summary="Set the limits for a project, key or model (scope: project|key|model).", guard=admin,
               body=QuotaLimits, response=QuotaOut)
    async def set_quota(call: Call):
        pid, scope, target = await project_of(call), scope_of(call), call.path("target")
        if scope == "project" and target != pid:
            raise BadRequest("A project quota's target is the project id.", code="invalid_target")
        if scope == "key":
            await services.keys.get(pid, target)
        if scope == "model":
            await services.models.get(pid, target)
        qid = Quota.doc_id(scope, target)
        existing = await services.quotas.find(pid, qid)
        if existing is None:
            try:
                saved = await services.quotas.create(Quota(id=qid, project_id=pid, scope=scope, target=target,
                                                           limits=call.body))
            except AlreadyExists as exc:
                if exc.code == "id_taken":
                    raise
                saved = await services.quotas.update(pid, qid, lambda q: setattr(q, "limits", call.body))
        else:
            saved = await services.quotas.update(pid, qid, lambda q: setattr(q, "limits", call.body))
        services.quota_book.invalidate(pid)
        return QuotaOut.of(saved)

    @api.route("manage/projects/{project}/quotas/{scope}/{target}", "DELETE", name="manage_delete_quota",
               summary="Remove a quota.", guard=admin, status=204)
    async def delete_quota(call: Call):
        pid = call.path("project")
        await services.quotas.delete(pid, Quota.doc_id(scope_of(call), call.path("target")))
        services.quota_book.invalidate(pid)
        return Response(status_code=204)

    return api
