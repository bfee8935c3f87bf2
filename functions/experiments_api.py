"""A/B experiments: operate (admin: /manage/projects/{p}/experiments…) and feedback (virtual key: /v1/feedback)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from shared.domain.base import utcnow
from shared.experiments.domain import Action, Experiment, ExperimentList, ExperimentOut, ExperimentSpec
from shared.experiments.feedback import FeedbackIn, FeedbackOut, FeedbackService
from shared.experiments.registry import ExperimentRegistry
from shared.experiments.report import ExperimentResults, compute
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

from .admin_api import IF_MATCH

PROPAGATION = (" Routing follows on the instance that served this call at once, on every other instance within "
               "FLAG_CACHE_TTL_SECONDS.")
ACTIONS: dict[Action, str] = {
    "start": "Start (draft → running) or resume (paused → running): calls are split between the variants.",
    "pause": "Pause (running → paused): every call goes to the control (the first variant) and is not counted.",
    "stop": "Stop (running | paused | draft → stopped, final): routing returns to the model's own; results stay.",
}


def build(registry: ExperimentRegistry, feedback: Callable[[], FeedbackService], log_table: Callable[[], Any],
          projects: ProjectRegistry, admin: Guard, data_plane: Guard, *, max_body_bytes: int,
          max_rows: int) -> ApiBlueprint:
    """`feedback`, `log_table`: opened on first use, inside the worker's event loop."""
    api = ApiBlueprint("experiments", max_body_bytes=max_body_bytes)
    base = "manage/projects/{project}/experiments"

    def who(call: Call) -> str:
        assert call.principal is not None
        return f"{call.principal.kind}:{call.principal.subject}"

    def out(e: Experiment, status: int = 200) -> Response:
        return json_response(ExperimentOut.of(e), status, {"etag": e.etag or ""})

    @api.route(base, "POST", name="manage_create_experiment", guard=admin, body=ExperimentSpec,
               response=ExperimentOut, status=201,
               summary="Create an A/B experiment (draft) on a model: variants (backend pools or model versions) "
                       "with traffic weights; the first variant is the control.")
    async def create(call: Call):
        pid = await projects.require(call.path("project"))
        return out(await registry.create(pid, call.body, who(call)), 201)

    @api.route(base, "GET", name="manage_list_experiments", guard=admin, response=ExperimentList,
               summary="A project's experiments (every status).")
    async def list_all(call: Call):
        page = await registry.all(await projects.require(call.path("project")))
        return ExperimentList(items=[ExperimentOut.of(e) for e in page.items], invalid=page.invalid)

    @api.route(base + "/{experiment}", "GET", name="manage_get_experiment", guard=admin, response=ExperimentOut,
               summary="Get an experiment, with its audit history (who changed what, when).")
    async def get_one(call: Call):
        return out(await registry.get(call.path("project"), call.path("experiment")))

    @api.route(base + "/{experiment}", "PUT", name="manage_replace_experiment", guard=admin, body=ExperimentSpec,
               response=ExperimentOut, headers=IF_MATCH,
               summary="Replace an experiment's definition (draft or paused only; name unchanged)." + PROPAGATION)
    async def replace(call: Call):
        saved = await registry.update(call.path("project"), call.path("experiment"), call.body, who(call),
                                      call.req.headers.get("if-match"))
        return out(saved)

    @api.route(base + "/{experiment}", "DELETE", name="manage_delete_experiment", guard=admin, status=204,
               headers=IF_MATCH, summary="Delete an experiment that is not running, with its feedback.")
    async def delete(call: Call):
        pid, name = call.path("project"), call.path("experiment")
        await registry.delete(pid, name, call.req.headers.get("if-match"))
        await feedback().delete_for(pid, name)
        return Response(status_code=204)

    for action, summary in ACTIONS.items():
        _transition(api, registry, base, action, summary + PROPAGATION, admin, who, out)

    @api.route(base + "/{experiment}/results", "GET", name="manage_experiment_results", guard=admin,
               response=ExperimentResults,
               summary="Per variant: requests, error rate, latency p50/p95, tokens, cost, mean feedback; the "
                       "significance tests against the control and a plain verdict (winner / not yet significant).")
    async def results(call: Call):
        exp = await registry.get(call.path("project"), call.path("experiment"))
        scores = await feedback().for_experiment(exp.project_id, exp.id, max_rows)
        return await compute(exp, log_table(), scores, utcnow(), max_rows=max_rows)

    @api.route("v1/feedback", "POST", name="v1_feedback", guard=data_plane, body=FeedbackIn, response=FeedbackOut,
               summary="Score one of your own calls in an experiment (by its x-request-id); again to change it.")
    async def give_feedback(call: Call):
        p = call.principal
        assert p is not None and p.project_id is not None and p.key_id is not None
        saved = await feedback().submit(p.project_id, p.key_id, call.body)
        return saved.out()

    return api


def _transition(api: ApiBlueprint, registry: ExperimentRegistry, base: str, action: Action, summary: str,
                admin: Guard, who: Callable[[Call], str], out: Callable[[Experiment], Response]) -> None:
    @api.route(f"{base}/{{experiment}}/{action}", "POST", name=f"manage_{action}_experiment", guard=admin,
               response=ExperimentOut, headers=IF_MATCH, summary=summary)
    async def transition(call: Call):
        return out(await registry.transition(call.path("project"), call.path("experiment"), action, who(call),
                                             call.req.headers.get("if-match")))
