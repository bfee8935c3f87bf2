"""Control plane of per-call approvals: an approver lists the sensitive tool calls waiting for them and accepts or
rejects each exact call (caller, tool, argument digest). Admin role."""
from __future__ import annotations

from pydantic import Field

from collections.abc import Callable

from shared.domain.base import AppModel
from shared.pillars.tools.call_approvals import ApprovalDecision, CallApproval, CallApprovals
from shared.web.api import ApiBlueprint, Call, Guard


class CallApprovalOut(AppModel):
    id: str
    project_id: str
    toolbox: str
    tool: str
    caller: str
    digest: str
    arguments_preview: str
    state: str
    expires_at: str
    decided_by: str | None = None
    reason: str = ""

    @classmethod
    def of(cls, a: CallApproval) -> "CallApprovalOut":
        return cls(id=a.id, project_id=a.project_id, toolbox=a.toolbox, tool=a.tool, caller=a.caller,
                   digest=a.digest, arguments_preview=a.arguments_preview, state=a.state,
                   expires_at=a.expires_at.isoformat(), decided_by=a.decided_by, reason=a.reason)


class CallApprovalList(AppModel):
    items: list[CallApprovalOut] = Field(max_length=100)


def build(approvals: Callable[[], CallApprovals], admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    """`approvals`: the data plane's call approvals, built on first use inside the worker's event loop."""
    api = ApiBlueprint("tool-call-approvals", max_body_bytes=max_body_bytes)

    @api.route("manage/projects/{project}/tool-call-approvals", "GET", name="manage_list_call_approvals",
               summary="Sensitive tool calls waiting for an approver.", guard=admin, response=CallApprovalList)
    async def pending(call: Call):
        items = await approvals().pending(call.path("project"))
        return CallApprovalList(items=[CallApprovalOut.of(a) for a in items])

    @api.route("manage/projects/{project}/tool-call-approvals/{approval}/decision", "POST",
               name="manage_decide_call_approval", summary="Approve or reject one waiting tool call.",
               guard=admin, body=ApprovalDecision, response=CallApprovalOut)
    async def decide(call: Call):
        assert call.principal is not None
        decided = await approvals().decide(call.path("project"), call.path("approval"), call.body,
                                                      by=call.principal.name or call.principal.subject)
        return CallApprovalOut.of(decided)

    return api
