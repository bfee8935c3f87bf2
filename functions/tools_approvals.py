"""Approvals for the tools pillar: the admin API over submissions, the audit trail and the project policy; the
queue function that probes each submission (and the one that records poison messages); the pinning timer."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import azure.functions as func
from pydantic import Field

from shared.domain.base import AppModel, Contract, InvalidDocument
from shared.pillars.tools.approvals import seconds_in_state
from shared.pillars.tools.domain import ApprovalRecord, Submission, SubmissionState, ToolsPolicy, ToolsPolicySpec
from shared.config import SettingProblem
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import query_int
from shared.web.misconfigured import configuration_error

from .admin_api import INVALID_DOC

if TYPE_CHECKING:  # only for types: the pillar loads on first use
    from shared.pillars.tools.wiring import ToolsPillar

log = logging.getLogger("gateway.tools.approvals")
_STATES = ("queued", "probing", "probed", "approved", "rejected", "poisoned")


class SubmissionOut(Submission):
    seconds_in_state: float = Field(description="How long it has been in its current state (approval SLA).")

    @classmethod
    def of(cls, s: Submission, now: datetime) -> "SubmissionOut":
        return cls(**s.model_dump(), seconds_in_state=seconds_in_state(s, now))


class SubmissionList(AppModel):
    items: list[SubmissionOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null: last.")
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class SubmissionCreate(Contract):
    subject_kind: Literal["mcp_server", "api_source"]
    subject_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    note: str = Field(default="", max_length=2000)


class Decision(Contract):
    reason: str = Field(min_length=1, max_length=2000)


class RecordList(AppModel):
    items: list[ApprovalRecord]


class PinningReport(AppModel):
    servers: int
    quarantined: list[str]
    unreachable: list[str]



async def _check_all(tools: ToolsPillar) -> Any:
    """The pinning check over every approved server. Imported on first run: the probe (httpx, jsonschema, the MCP
    client) stays out of the app's import (cold start)."""
    from shared.pillars.tools.pin_check import check_all

    return await check_all(tools.registry, tools.prober, tools.pinning)

def submissions_of(tools: ToolsPillar):
    async def listing(pid: str, call: Call, **filters: str) -> SubmissionList:
        state = call.req.query_params.get("state")
        if state is not None and state not in _STATES:
            from shared.errors import BadRequest

            raise BadRequest(f"state must be one of {', '.join(_STATES)}.", code="invalid_query",
                             details=[{"field": "state", "message": "unknown state"}])
        older = query_int(call.req, "older_than_seconds", 0, 0, 10**8)
        if state:
            filters["state"] = state
        page = await tools.registry.submissions.list(pid, limit=query_int(call.req, "limit", 200, 1, 500),
                                                     cursor=call.req.query_params.get("cursor") or None, **filters)
        now = tools.audit.clock()
        items = [SubmissionOut.of(s, now) for s in page.items]
        # longest-waiting first within the page; an SLA sweep follows `next_cursor` to the end
        items = sorted((i for i in items if i.seconds_in_state >= older), key=lambda i: -i.seconds_in_state)
        return SubmissionList(items=items, next_cursor=page.cursor, invalid=page.invalid)
    return listing


LIST_QUERY = (("state", "queued | probing | probed | approved | rejected | poisoned"),
              ("older_than_seconds", "Only submissions in their state at least this long (SLA breaches)."),
              ("limit", "Submissions read per page (1–500, default 200)."),
              ("cursor", "`next_cursor` of the previous page."))


def build(tools: ToolsPillar, projects: ProjectRegistry, admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("tools-approvals", max_body_bytes=max_body_bytes)
    listing = submissions_of(tools)

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    def actor(call: Call) -> str:
        return call.principal.subject if call.principal else "admin"

    @api.route("manage/projects/{project}/submissions", "POST", name="manage_submit_tools",
               summary="Submit a server or API source for approval: it is queued, probed, then decided.",
               guard=admin, body=SubmissionCreate, response=SubmissionOut, status=202)
    async def submit(call: Call):
        pid, b = await project_of(call), call.body
        s = await tools.approvals.submit(pid, b.subject_kind, b.subject_id, actor(call), b.note)
        return SubmissionOut.of(s, tools.audit.clock())

    @api.route("manage/projects/{project}/submissions", "GET", name="manage_list_submissions",
               summary="Submissions, longest in their state first.", guard=admin, response=SubmissionList,
               query=LIST_QUERY)
    async def list_submissions(call: Call):
        return await listing(await project_of(call), call)

    @api.route("manage/projects/{project}/submissions/{submission}", "GET", name="manage_get_submission",
               summary="A submission: state, history, findings and the tools the probe listed.", guard=admin,
               response=SubmissionOut)
    async def get_submission(call: Call):
        s = await tools.approvals.get(call.path("project"), call.path("submission"))
        return SubmissionOut.of(s, tools.audit.clock())

    @api.route("manage/projects/{project}/submissions/{submission}/approve", "POST",
               name="manage_approve_submission", summary="Approve a probed submission: its tools are pinned and "
               "served.", guard=admin, body=Decision, response=SubmissionOut)
    async def approve(call: Call):
        s = await tools.approvals.approve(await project_of(call), call.path("submission"), actor(call),
                                          call.body.reason)
        return SubmissionOut.of(s, tools.audit.clock())

    @api.route("manage/projects/{project}/submissions/{submission}/reject", "POST",
               name="manage_reject_submission", summary="Reject a submission.", guard=admin, body=Decision,
               response=SubmissionOut)
    async def reject(call: Call):
        s = await tools.approvals.reject(await project_of(call), call.path("submission"), actor(call),
                                         call.body.reason)
        return SubmissionOut.of(s, tools.audit.clock())

    @api.route("manage/projects/{project}/approval-records", "GET", name="manage_list_approval_records",
               summary="The audit trail: who submitted, probed, approved, rejected, quarantined or re-approved "
               "what, when and why.", guard=admin, response=RecordList,
               query=(("subject", "A server, API source or tool id."),))
    async def records(call: Call):
        pid = await project_of(call)
        return RecordList(items=await tools.audit.of(pid, subject_id=call.req.query_params.get("subject")))

    @api.route("manage/projects/{project}/tools-policy", "GET", name="manage_get_tools_policy",
               summary="The project's approval policy.", guard=admin, response=ToolsPolicySpec)
    async def get_policy(call: Call):
        found = await tools.registry.policies.find(await project_of(call), ToolsPolicy.DOC_ID)
        return found.spec if found else ToolsPolicySpec()

    @api.route("manage/projects/{project}/tools-policy", "PUT", name="manage_set_tools_policy",
               summary="Set the project's approval policy (auto-approve clean submissions).", guard=admin,
               body=ToolsPolicySpec, response=ToolsPolicySpec)
    async def set_policy(call: Call):
        pid = await project_of(call)
        repo = tools.registry.policies
        if await repo.find(pid, ToolsPolicy.DOC_ID) is None:
            saved = await repo.create(ToolsPolicy(project_id=pid, spec=call.body))
        else:
            saved = await repo.update(pid, ToolsPolicy.DOC_ID, lambda p: setattr(p, "spec", call.body))
        await tools.audit.record(pid, "policy_set", "tools_policy", ToolsPolicy.DOC_ID, actor=actor(call),
                                 reason=f"policy set: {call.body.model_dump_json()}")
        return saved.spec

    @api.route("manage/tools/pinning-check", "POST", name="manage_tools_pinning_check",
               summary="Run the pinning check now over every approved server (the timer runs it on its "
               "schedule).", guard=admin, response=PinningReport)
    async def pinning_now(call: Call):
        summary = await _check_all(tools)
        return PinningReport(servers=summary.servers, quarantined=summary.quarantined,
                             unreachable=summary.unreachable)

    return api


def background(tools: ToolsPillar, problems: Sequence[SettingProblem] = (),
               outcome: Callable[[str, str], None] | None = None) -> func.Blueprint:
    """Queue and timer functions. Queue names and the schedule come from app settings (%…%). With malformed
    settings they are still indexed but refuse to run (raise): a queue message is then retried and kept,
    never probed by a misconfigured app."""
    bp = func.Blueprint()
    count = outcome if outcome is not None else (lambda job, result: None)  # `gateway.job.outcomes`

    def ready() -> None:
        if problems:
            raise configuration_error(problems)

    @bp.function_name("toolsprobesubmission")
    @bp.queue_trigger(arg_name="msg", queue_name="%TOOLS_APPROVALS_QUEUE%", connection="AzureWebJobsStorage")
    async def probe_submission(msg: func.QueueMessage) -> None:
        ready()
        try:
            result = await tools.approvals.process(msg.get_body())
        except Exception:
            count("tools_approvals_queue", "retry")  # a dependency error: the host redelivers
            raise
        count("tools_approvals_queue", result.split(":", 1)[0])
        log.info("approvals: message %s → %s (dequeue %s)", msg.id, result, msg.dequeue_count)

    @bp.function_name("toolspoisonsubmission")
    @bp.queue_trigger(arg_name="msg", queue_name="%TOOLS_APPROVALS_QUEUE%-poison", connection="AzureWebJobsStorage")
    async def poison_submission(msg: func.QueueMessage) -> None:
        ready()
        result = await tools.approvals.poisoned(msg.get_body())
        count("tools_approvals_queue", "poison")
        log.warning("approvals: poison message %s → %s", msg.id, result)

    @bp.function_name("toolspinningcheck")
    @bp.timer_trigger(arg_name="timer", schedule="%TOOLS_PINNING_SCHEDULE%", run_on_startup=False,
                      use_monitor=True)
    async def pinning_check(timer: func.TimerRequest) -> None:
        ready()
        summary = await _check_all(tools)
        count("tools_pinning", "quarantined" if summary.quarantined else "ok")
        log.info("pinning check: %s servers, quarantined %s, unreachable %s", summary.servers,
                 summary.quarantined, summary.unreachable)

    return bp
