"""Models data plane: OpenAI and Azure OpenAI compatible. Virtual keys only; the models pillar must be on."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.domain.base import Pillar
from shared.domain.lifecycle import serves
from shared.pillars.models.domain import OpenAIModel, OpenAIModelList
from shared.pillars.models.contracts import ChatRequest, EmbeddingsRequest, ModelsOperation, exchange
from shared.pillars.models.catalog import ModelCatalog
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import read_body

if TYPE_CHECKING:
    from shared.pipeline.pipeline import Pipeline

AZURE = (("api-version", "Azure OpenAI API version (accepted, not required)."),)


def build(pipeline: Callable[[], "Pipeline"], catalog: ModelCatalog, guard: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    """`pipeline`: built on first call, inside the worker's event loop (its clients bind to it)."""
    api = ApiBlueprint("models", max_body_bytes=max_body_bytes)
    limit = max_body_bytes

    async def proxy(call: Call, op: ModelsOperation, path_model: str | None = None):
        assert call.principal is not None
        # depth-bounded and strictly typed before anything is taken: every decision uses the validated flags
        x = exchange(op, await read_body(call.req, limit), path_model, principal=call.principal,
                     request_id=call.request_id, headers=dict(call.req.headers), started=call.started)
        return await pipeline().run(x)

    async def callable_models(call: Call) -> OpenAIModelList:
        p = call.principal
        assert p is not None and p.project_id is not None
        models = await catalog.models(p.project_id)
        return OpenAIModelList(data=[
            OpenAIModel(id=m.spec.name, created=int(m.created_at.timestamp()), owned_by=p.project_id)
            for m in models if p.may_use(Pillar.models, m.spec.name) and serves(m.spec.lifecycle)])

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

    # Azure OpenAI's v1 API (/openai/v1/...): OpenAI-shaped bodies naming the model; api-version optional.
    @api.route("openai/v1/chat/completions", "POST", name="azure_v1_chat_completions",
               summary="Chat completion (Azure OpenAI v1 path; the body names the model).", guard=guard,
               body=ChatRequest, parse_body=False, query=AZURE)
    async def azure_v1_chat(call: Call):
        return await proxy(call, "chat")

    @api.route("openai/v1/embeddings", "POST", name="azure_v1_embeddings",
               summary="Embeddings (Azure OpenAI v1 path).", guard=guard, body=EmbeddingsRequest, parse_body=False,
               query=AZURE)
    async def azure_v1_embeddings(call: Call):
        return await proxy(call, "embeddings")

    return api
