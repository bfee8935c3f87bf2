"""Models data plane (OpenAI-compatible). Virtual keys only; the project's models pillar must be on."""
from __future__ import annotations

from shared.auth.guards import DataPlaneGuard
from shared.domain.base import Pillar
from shared.domain.models import OpenAIModel, OpenAIModelList
from shared.services import Services
from shared.web.api import ApiBlueprint, Call


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("models", max_body_bytes=services.settings.max_data_body_bytes)
    guard = DataPlaneGuard(services.key_service, services.flags, Pillar.models)

    @api.route("v1/models", "GET", name="v1_list_models", summary="Models this key may call (OpenAI shape).",
               guard=guard, response=OpenAIModelList)
    async def list_models(call: Call):
        p = call.principal
        assert p is not None and p.project_id is not None
        models = await services.catalog.models(p.project_id)
        allowed = p.allowed_models
        return OpenAIModelList(data=[
            OpenAIModel(id=m.spec.name, created=int(m.created_at.timestamp()), owned_by=p.project_id)
            for m in models if allowed is None or m.spec.name in allowed])

    return api
