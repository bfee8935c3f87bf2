"""Models data plane: OpenAI and Azure OpenAI compatible. Virtual keys only; the models pillar must be on."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.domain.base import Pillar
from shared.domain.lifecycle import serves
from shared.pillars.models.domain import OpenAIModel, OpenAIModelList
from shared.pillars.models.contracts import ChatRequest, EmbeddingsRequest, ModelsOperation, exchange
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models import responses_contracts
from shared.pillars.models.responses_contracts import ResponsesRequest
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import header_dict, read_body

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
                     request_id=call.request_id, headers=header_dict(call.req), started=call.started)
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

    _responses(api, guard, pipeline, limit)
    return api


def _responses(api: ApiBlueprint, guard: Guard, pipeline: Callable[[], "Pipeline"], limit: int) -> None:
    """The Responses API, on OpenAI's paths and on Azure OpenAI's v1 paths (same bodies, the body names the
    model); a stored response is read or deleted on the backend that created it (responses_directory.py)."""
    ids = (("after", "Input items: list after this id."), ("limit", "Input items: page size (1-100)."),
           ("order", "Input items: asc | desc."))

    async def create(call: Call):
        assert call.principal is not None
        x = responses_contracts.create(await read_body(call.req, limit), principal=call.principal,
                                       request_id=call.request_id, headers=header_dict(call.req),
                                       started=call.started)
        return await pipeline().run(x)

    def by_id(op: str):
        async def handler(call: Call):
            assert call.principal is not None
            x = responses_contracts.by_id(op, call.path("response"), call.req.query_params,
                                          principal=call.principal, request_id=call.request_id,
                                          headers=header_dict(call.req), started=call.started)
            return await pipeline().run(x)
        return handler

    for prefix, name, query in (("v1", "v1", ()), ("openai/v1", "azure_v1", AZURE)):
        api.route(f"{prefix}/responses", "POST", name=f"{name}_create_response",
                  summary="Create a model response (Responses API; `stream: true` for typed SSE events).",
                  guard=guard, body=ResponsesRequest, parse_body=False, query=query)(create)
        api.route(f"{prefix}/responses/{{response}}", "GET", name=f"{name}_get_response",
                  summary="A stored model response, from the backend that created it.", guard=guard,
                  query=query)(by_id("responses.get"))
        api.route(f"{prefix}/responses/{{response}}", "DELETE", name=f"{name}_delete_response",
                  summary="Delete a stored model response on the backend that created it.", guard=guard,
                  query=query)(by_id("responses.delete"))
        api.route(f"{prefix}/responses/{{response}}/input_items", "GET", name=f"{name}_response_input_items",
                  summary="The input items of a stored model response.", guard=guard,
                  query=(*query, *ids))(by_id("responses.input_items"))
