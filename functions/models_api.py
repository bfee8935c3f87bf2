"""Models data plane: OpenAI and Azure OpenAI compatible. Virtual keys only; the models pillar must be on."""
from __future__ import annotations

from shared.auth.guards import DataPlaneGuard
from shared.domain.base import Pillar
from shared.domain.lifecycle import serves
from shared.pillars.models.domain import OpenAIModel, OpenAIModelList
from shared.pillars.models.contracts import ChatRequest, EmbeddingsRequest, ModelsOperation
from shared.pillars.models.spec import parse
from shared.pipeline import Exchange
from shared.services import Services
from shared.web.api import ApiBlueprint, Call
from shared.web.inputs import read_body

AZURE = (("api-version", "Azure OpenAI API version (accepted, not required)."),)


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("models", max_body_bytes=services.settings.max_data_body_bytes)
    guard = DataPlaneGuard(services.key_service, services.flags, Pillar.models)
    limit = services.settings.max_data_body_bytes

    async def proxy(call: Call, op: ModelsOperation, path_model: str | None = None):
        assert call.principal is not None
        body, name = parse(op, await read_body(call.req, limit), path_model)
        return await services.models_pipeline.run(Exchange(
            Pillar.models, op, call.principal, call.request_id, body, dict(call.req.headers), call.started,
            resource=name))

    @api.route("v1/models", "GET", name="v1_list_models", summary="Models this key may call (OpenAI shape).",
               guard=guard, response=OpenAIModelList)
    async def list_models(call: Call):
        p = call.principal
        assert p is not None and p.project_id is not None
        models = await services.catalog.models(p.project_id)
        return OpenAIModelList(data=[
            OpenAIModel(id=m.spec.name, created=int(m.created_at.timestamp()), owned_by=p.project_id)
            for m in models if p.may_use(Pillar.models, m.spec.name) and serves(m.spec.lifecycle)])

    @api.route("v1/chat/completions", "POST", name="v1_chat_completions",
               summary="Chat completion (OpenAI shape; `stream: true` for SSE).", guard=guard, body=ChatRequest,
               parse_body=False)
    async def chat(call: Call):
        return await proxy(call, "chat")

    @api.route("v1/embeddings", "POST", name="v1_embeddings", summary="Embeddings (OpenAI shape).", guard=guard,
               body=EmbeddingsRequest, parse_body=False)
    async def embeddings(call: Call):
        return await proxy(call, "embeddings")

    @api.route("openai/deployments/{deployment}/chat/completions", "POST", name="azure_chat_completions",
               summary="Chat completion (Azure OpenAI shape; the deployment is the model name).", guard=guard,
               body=ChatRequest, parse_body=False, query=AZURE)
    async def azure_chat(call: Call):
        return await proxy(call, "chat", call.path("deployment"))

    @api.route("openai/deployments/{deployment}/embeddings", "POST", name="azure_embeddings",
               summary="Embeddings (Azure OpenAI shape).", guard=guard, body=EmbeddingsRequest, parse_body=False,
               query=AZURE)
    async def azure_embeddings(call: Call):
        return await proxy(call, "embeddings", call.path("deployment"))

    return api
