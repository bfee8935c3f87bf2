"""Operate: register models (public name → backend pool) and attach quotas to a project, a key or a model."""
from __future__ import annotations

from starlette.responses import Response

from shared.domain.quotas import QuotaLimits, QuotaList, QuotaOut
from shared.pillars.models.domain import ModelOut, ModelSpec
from shared.pillars.models.registry import ModelRegistry
from shared.quotas.registry import QuotaRegistry
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.pages import PageOut
from shared.web.responses import json_response

from .admin_api import IF_MATCH


class ModelList(PageOut[ModelOut]):
    pass


def build(models: ModelRegistry, quotas: QuotaRegistry, projects: ProjectRegistry, admin: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("models-admin", max_body_bytes=max_body_bytes)

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    def with_etag(model: ModelOut, etag: str | None, status: int = 200) -> Response:
        return json_response(model, status, {"etag": etag or ""})

    @api.route("manage/projects/{project}/models", "POST", name="manage_create_model",
               summary="Register a model: a public name mapped to a pool of backends.", guard=admin, body=ModelSpec,
               response=ModelOut, status=201)
    async def create_model(call: Call):
        model = await models.create(await project_of(call), call.body)
        return with_etag(ModelOut.of(model), model.etag, 201)

    @api.route("manage/projects/{project}/models", "GET", name="manage_list_models", summary="List models.",
               guard=admin, response=ModelList)
    async def list_models(call: Call):
        found, invalid = await models.list(await project_of(call))
        return ModelList(items=[ModelOut.of(m) for m in found], invalid=invalid)

    @api.route("manage/projects/{project}/models/{model}", "GET", name="manage_get_model", summary="Get a model.",
               guard=admin, response=ModelOut)
    async def get_model(call: Call):
        m = await models.get(call.path("project"), call.path("model"))
        return with_etag(ModelOut.of(m), m.etag)

    @api.route("manage/projects/{project}/models/{model}", "PUT", name="manage_replace_model",
               summary="Replace a model's definition (name unchanged).", guard=admin, body=ModelSpec,
               response=ModelOut, headers=IF_MATCH)
    async def replace_model(call: Call):
        model = await models.replace(call.path("project"), call.path("model"), call.body,
                                     call.req.headers.get("if-match"))
        return with_etag(ModelOut.of(model), model.etag)

    @api.route("manage/projects/{project}/models/{model}", "DELETE", name="manage_delete_model",
               summary="Delete a model.", guard=admin, status=204, headers=IF_MATCH)
    async def delete_model(call: Call):
        await models.delete(call.path("project"), call.path("model"), call.req.headers.get("if-match"))
        return Response(status_code=204)

    @api.route("manage/projects/{project}/quotas", "GET", name="manage_list_quotas",
               summary="Quotas of a project (its own, its keys' and its models').", guard=admin, response=QuotaList)
    async def list_quotas(call: Call):
        items, invalid = await quotas.list(await project_of(call))
        return QuotaList(items=[QuotaOut.of(q) for q in items], invalid=invalid)

    @api.route("manage/projects/{project}/quotas/{scope}/{target}", "PUT", name="manage_set_quota",
               summary="Set the limits for a project, key or model (scope: project|key|model).", guard=admin,
               body=QuotaLimits, response=QuotaOut)
    async def set_quota(call: Call):
        pid = await project_of(call)
        saved = await quotas.set(pid, call.path("scope"), call.path("target"), call.body)
        return QuotaOut.of(saved)

    @api.route("manage/projects/{project}/quotas/{scope}/{target}", "DELETE", name="manage_delete_quota",
               summary="Remove a quota.", guard=admin, status=204)
    async def delete_quota(call: Call):
        await quotas.delete(call.path("project"), call.path("scope"), call.path("target"))
        return Response(status_code=204)

    return api
