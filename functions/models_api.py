"""Models data plane: OpenAI and Azure OpenAI compatible. Virtual keys only; the models pillar must be on."""
from __future__ import annotations

from shared.auth.guards import DataPlaneGuard
from shared.domain.base import Pillar
from shared.domain.models import OpenAIModel, OpenAIModelList
from shared.proxy.contracts import ChatRequest, EmbeddingsRequest, Operation
from shared.services import Services
from shared.web.api import ApiBlueprint, Call
from shared.web.inputs import read_body

AZURE = (("api-version", "Azure OpenAI API version (accepted, not required)."),)


def build(services: Services) -> ApiBlueprint:
    api = ApiBlueprint("models", max_body_bytes=services.settings.max_data_body_bytes)
    guard = DataPlaneGuard(services.key_service, services.flags, Pillar.models)
    limit = services.settings.max_data_body_bytes

    async def proxy(call: Call, op: Operation, path_model: str | None = None):
        assert call.principal is not None
        raw = await read_body(call.req, limit)
        return await services.model_proxy.handle(principal=call.principal, request_id=call.request_id, op=op,
                                                 raw=raw, headers=dict(call.req.headers), path_model=path_model,
                                                 started=call.started)

    async def callable_models(call: Call) -> OpenAIModelList:
        p = call.principal
        assert p is not None and p.project_id is not None
        models = await services.catalog.models(p.project_id)
        return OpenAIModelList(data=[
            OpenAIModel(id=m.spec.name, created=int(m.created_at.timestamp()), owned_by=p.project_id)
            for m in models if (p.allowed_models is None or m.spec.name in p.allowed_models)
            and m.spec.lifecycle != "retired"])

    @api.route("v1/models", "GET", name="v1_list_models", summary="Models this key may call (OpenAI shape).",
               guard=guard, response=OpenAIModelList)
    async def list_models(call: Call):
        return await callable_models(call)

    # `AzureOpenAI(...).models.list()` calls GET {endpoint}/openai/models. Same list: the openai SDK reads both
    # through one `Model` type (id, created, object, owned_by), and a deployment name is the model name here.
    @api.route("openai/models", "GET", name="azure_list_models",
               summary="Models this key may call (Azure OpenAI path, same list as /v1/models).", guard=guard,
               response=OpenAIModelList, query=AZURE)
    async def azure_list_models(call: Call):
        return await callable_models(call)

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
