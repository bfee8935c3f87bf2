"""Build: the developer's model playground — chat through the gateway as one of your own keys, streamed, with
the governance trace (shared/pillars/models/playground.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.domain.keys import VirtualKey
from shared.flags.service import FlagService
from shared.pillars.models.playground import ModelPlayground, ModelPlaygroundChat, ModelPlaygroundResult
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard

if TYPE_CHECKING:
    from shared.pipeline.pipeline import Pipeline


def build(pipeline: Callable[[], "Pipeline"], keys: Repository[VirtualKey], flags: FlagService,
          projects: ProjectRegistry, developer: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    """`pipeline`: the models pipeline, built on first call inside the worker's event loop."""
    api = ApiBlueprint("models_playground", max_body_bytes=max_body_bytes)
    playground = ModelPlayground(pipeline, keys, flags)

    @api.route("portal/projects/{project}/models/{model}/playground", "POST", name="portal_model_playground",
               summary="Chat with a model as one of your own keys, through the full governance pipeline; the "
               "answer (streamed as `answer` events when `stream`) and the governance trace (policies and "
               "verdicts, cache, backend, tokens, cost).", guard=developer, body=ModelPlaygroundChat,
               response=ModelPlaygroundResult)
    async def chat(call: Call):
        assert call.principal is not None
        pid = await projects.require(call.path("project"))
        return await playground.run(call.principal, pid, call.path("model"), call.body, call.request_id)

    return api
