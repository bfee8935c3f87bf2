"""The approval workflow: submit → queue → probe (findings) → approve / reject (an admin, or the project's
auto-approve policy for a clean probe). Every step is in the audit trail; time in state is queryable (SLA).

Redelivery-safe: a message whose submission is past `probing` is acknowledged without effect; a crash while
probing re-probes (read-only). A message the host gives up on lands in `<queue>-poison`, and `poisoned` marks its
submission so it stays visible to admins instead of being lost.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ...errors import Conflict, NotFound
from .audit import AuditTrail
from .domain import ApiSource, McpServer, Submission, ToolsPolicy
from .queue import SubmissionMessage, SubmissionQueue
from .registry import ToolsRegistry

if TYPE_CHECKING:  # the probe (httpx, jsonschema, the MCP client) loads when a submission is first inspected
    from .probe import ProbeResult

log = logging.getLogger("gateway.tools.approvals")
Subject = McpServer | ApiSource
Inspector = Callable[[Subject], Awaitable["ProbeResult"]]
OPEN_STATES = ("queued", "probing", "probed")


class Approvals:
    def __init__(self, registry: ToolsRegistry, queue: SubmissionQueue, audit: AuditTrail, *,
                 inspect_server: Inspector, inspect_api: Inspector) -> None:
        self._reg, self._queue, self._audit = registry, queue, audit
        self._inspect = {"mcp_server": inspect_server, "api_source": inspect_api}

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._audit.clock

    async def _subject(self, project_id: str, kind: str, id: str) -> Subject:
        repo = self._reg.servers if kind == "mcp_server" else self._reg.api_sources
        return await repo.get(project_id, id)  # type: ignore[return-value]

    async def _set_approval(self, project_id: str, kind: str, id: str, state: str, publish: bool = False,
                            base_url: str | None = None) -> None:
        repo = self._reg.servers if kind == "mcp_server" else self._reg.api_sources

        def change(s: Subject) -> None:
            s.approval = state  # type: ignore[assignment]
            if publish and s.lifecycle == "draft":
                s.lifecycle = "published"
            if base_url and isinstance(s, ApiSource):
                s.resolved_base_url = base_url  # the base URL the admin approved (probed)
        await repo.update(project_id, id, change)  # type: ignore[arg-type]
        self._reg.changed(project_id)

    # ---- submit

    async def submit(self, project_id: str, kind: str, subject_id: str, actor: str, note: str = "") -> Submission:
        """Idempotent: an open submission of the same subject is re-sent (a lost enqueue is repaired by
        submitting again), never duplicated."""
        await self._subject(project_id, kind, subject_id)
        page = await self._reg.submissions.list(project_id, limit=50, subject_id=subject_id, subject_kind=kind)
        open_ = [s for s in page.items if s.state in OPEN_STATES]
        if open_:
            submission = open_[0]
        else:
            submission = Submission(id=f"sub-{uuid.uuid4().hex[:16]}", project_id=project_id, subject_kind=kind,
                                    subject_id=subject_id, submitted_by=actor, note=note)
            submission.enter("queued", actor, note, self.clock())
            submission = await self._reg.submissions.create(submission)
            await self._set_approval(project_id, kind, subject_id, "pending")
            await self._audit.record(project_id, "submitted", kind, subject_id, actor=actor, reason=note,
                                     submission_id=submission.id)
        if submission.state == "queued":
            await self._queue.send(SubmissionMessage(project_id=project_id, submission_id=submission.id))
        return submission

    # ---- the queue function

    async def process(self, body: str | bytes) -> str:
        """Handle one queue message; returns what happened (for logs/tests). Raises only on dependency errors,
        so the host redelivers."""
        message = SubmissionMessage.parse(body)
        if message is None:
            log.error("approvals: ignoring a message that is not a submission: %r", body[:200])
            return "ignored"
        submission = await self._reg.submissions.find(message.project_id, message.submission_id)
        if submission is None:
            log.warning("approvals: submission %s/%s no longer exists", message.project_id, message.submission_id)
            return "gone"
        if submission.state not in ("queued", "probing"):
            return "duplicate"  # redelivered after it was handled
        submission = await self._reg.submissions.update(
            submission.project_id, submission.id, lambda s: _probing(s, self.clock()))
        subject = await self._subject(submission.project_id, submission.subject_kind, submission.subject_id)
        result = await self._inspect[submission.subject_kind](subject)

        def probed(s: Submission) -> None:
            s.findings, s.tools, s.bindings = result.findings[:500], result.tools[:1000], result.bindings
            s.server_info = result.server_info
            s.enter("probed", "probe", "clean" if result.clean else "findings to review", self.clock())
        submission = await self._reg.submissions.update(submission.project_id, submission.id, probed)
        await self._set_approval(submission.project_id, submission.subject_kind, submission.subject_id, "probed")
        await self._audit.record(submission.project_id, "probed", submission.subject_kind, submission.subject_id,
                                 actor="probe", reason=_summary(result), submission_id=submission.id)
        policy = await self._reg.policies.find(submission.project_id, ToolsPolicy.DOC_ID)
        if policy is not None and policy.spec.auto_approve_clean and result.clean and result.tools:
            await self.approve(submission.project_id, submission.id, "policy:auto-approve-clean",
                               "clean probe; project policy auto-approves", auto=True)
            return "auto_approved"
        return "probed"

    async def poisoned(self, body: str | bytes) -> str:
        """The host moved the message to `<queue>-poison` after its retries: record it on the submission."""
        message = SubmissionMessage.parse(body)
        if message is None:
            log.error("approvals: poison message that is not a submission: %r", body[:200])
            return "ignored"
        submission = await self._reg.submissions.find(message.project_id, message.submission_id)
        if submission is None or submission.state not in ("queued", "probing"):
            return "duplicate"
        reason = "the probe failed on every delivery; the message is in the poison queue"
        await self._reg.submissions.update(submission.project_id, submission.id,
                                           lambda s: s.enter("poisoned", "queue", reason, self.clock()))
        await self._audit.record(submission.project_id, "poisoned", submission.subject_kind,
                                 submission.subject_id, actor="queue", reason=reason, submission_id=submission.id)
        return "poisoned"

    # ---- decisions

    async def approve(self, project_id: str, submission_id: str, actor: str, reason: str, *,
                      auto: bool = False) -> Submission:
        submission = await self._reg.submissions.get(project_id, submission_id)
        if submission.state != "probed":
            raise Conflict(f"submission '{submission_id}' is {submission.state}; only a probed submission can be "
                           "approved.", code="invalid_state", details={"state": submission.state})
        if any(f.severity == "error" and f.check in ("egress", "reachable", "speaks_mcp", "lists_tools", "openapi")
               for f in submission.findings):
            raise Conflict("the probe failed; fix the server and submit it again.", code="probe_failed")
        subject = await self._subject(project_id, submission.subject_kind, submission.subject_id)
        plan = await self._reg.register_tools(project_id, subject.id, subject.spec.namespace,
                                              "mcp" if submission.subject_kind == "mcp_server" else "api",
                                              submission.tools, submission.bindings)

        def decided(s: Submission) -> None:
            s.findings = [*s.findings, *plan.collisions][:500]
            s.enter("approved", actor, reason, self.clock())
        submission = await self._reg.submissions.update(project_id, submission_id, decided)
        await self._set_approval(project_id, submission.subject_kind, subject.id, "approved", publish=True,
                                 base_url=submission.server_info.get("base_url"))
        await self._audit.record(project_id, "auto_approved" if auto else "approved", submission.subject_kind,
                                 subject.id, actor=actor, reason=reason, submission_id=submission_id)
        return submission

    async def reject(self, project_id: str, submission_id: str, actor: str, reason: str) -> Submission:
        submission = await self._reg.submissions.get(project_id, submission_id)
        if submission.state not in ("queued", "probing", "probed", "poisoned"):
            raise Conflict(f"submission '{submission_id}' is already {submission.state}.", code="invalid_state",
                           details={"state": submission.state})
        submission = await self._reg.submissions.update(
            project_id, submission_id, lambda s: s.enter("rejected", actor, reason, self.clock()))
        await self._set_approval(project_id, submission.subject_kind, submission.subject_id, "rejected")
        await self._audit.record(project_id, "rejected", submission.subject_kind, submission.subject_id,
                                 actor=actor, reason=reason, submission_id=submission_id)
        return submission

    async def get(self, project_id: str, submission_id: str) -> Submission:
        try:
            return await self._reg.submissions.get(project_id, submission_id)
        except NotFound:
            raise NotFound(f"submission '{submission_id}' does not exist.", code="submission_not_found") from None


def _probing(s: Submission, now: datetime) -> None:
    s.probe_attempts = min(s.probe_attempts + 1, 1000)
    if s.state != "probing":
        s.enter("probing", "probe", "", now)


def _summary(result: ProbeResult) -> str:
    counts = {sev: sum(f.severity == sev for f in result.findings) for sev in ("error", "warning")}
    return f"{len(result.tools)} tools; {counts['error']} errors, {counts['warning']} warnings"


def seconds_in_state(submission: Submission, now: datetime) -> float:
    return max(0.0, (now - submission.entered_at()).total_seconds())
