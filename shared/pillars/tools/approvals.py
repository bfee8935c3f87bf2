"""The approval workflow: submit → queue → probe (findings) → approve / reject (an admin, or the project's
auto-approve policy for a clean probe). Every step is in the audit trail; time in state is queryable (SLA).

Redelivery-safe: a message whose submission is past `probing` is acknowledged without effect; a crash while
probing re-probes (read-only). A message the host gives up on lands in `<queue>-poison`, and `poisoned` marks its
submission so it stays visible to admins instead of being lost.

Decisions are conditional writes: approve and reject re-check the submission's state inside the ETag-conditional
write, so of two concurrent decisions one wins and the other is 409. Only a submission probed against the subject's
CURRENT definition (`subject_hash` of the fields that make it "another server") can be approved; submitting a
subject whose open submission was probed against an older definition rejects that one as superseded.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

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
REJECTABLE_STATES = ("queued", "probing", "probed", "poisoned")
# What the probe reads of a subject: a change makes it "another server" (its approval is withdrawn, its probe stale).
IDENTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "mcp_server": ("url", "transport", "replicas", "auth"),
    "api_source": ("document_url", "document", "base_url", "operations", "auth"),
}


def subject_hash(subject: Subject) -> str:
    """sha256 over the subject's identity fields (canonical JSON): what a probe was run against."""
    kind = "mcp_server" if isinstance(subject, McpServer) else "api_source"
    picked = subject.spec.model_dump(mode="json", include=set(IDENTITY_FIELDS[kind]))
    return "sha256:" + hashlib.sha256(orjson.dumps(picked, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
                            base_url: str | None = None, probed_hash: str | None = None) -> None:
        repo = self._reg.servers if kind == "mcp_server" else self._reg.api_sources

        def change(s: Subject) -> None:
            if probed_hash is not None and subject_hash(s) != probed_hash:
                raise _changed(kind, id, probed_hash, subject_hash(s))  # edited since approve() checked
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
        submitting again), never duplicated. An open submission probed against an older definition of the subject
        is rejected as superseded and a new one probes the current definition."""
        subject = await self._subject(project_id, kind, subject_id)
        page = await self._reg.submissions.list(project_id, limit=50, subject_id=subject_id, subject_kind=kind)
        open_ = [s for s in page.items if s.state in OPEN_STATES]
        stale = [s for s in open_ if s.state == "probed" and s.probed_hash != subject_hash(subject)]
        for old in stale:
            await self.reject(project_id, old.id, actor, "superseded: the definition changed since it was probed")
        open_ = [s for s in open_ if s.id not in {old.id for old in stale}]
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
        try:
            submission = await self._reg.submissions.update(
                submission.project_id, submission.id, lambda s: _probing(s, self.clock()))
        except Conflict:
            return "duplicate"  # decided (rejected) or taken by another delivery meanwhile
        subject = await self._subject(submission.project_id, submission.subject_kind, submission.subject_id)
        fingerprint = subject_hash(subject)  # the definition this probe reads
        result = await self._inspect[submission.subject_kind](subject)

        def probed(s: Submission) -> None:
            if s.state != "probing":  # rejected while the probe ran: the decision stands
                raise Conflict(f"submission '{s.id}' is {s.state}.", code="invalid_state")
            s.findings, s.tools, s.bindings = result.findings[:500], result.tools[:1000], result.bindings
            s.server_info, s.probed_hash = result.server_info, fingerprint
            s.enter("probed", "probe", "clean" if result.clean else "findings to review", self.clock())
        try:
            submission = await self._reg.submissions.update(submission.project_id, submission.id, probed)
        except Conflict:
            return "duplicate"
        await self._set_approval(submission.project_id, submission.subject_kind, submission.subject_id, "probed")
        await self._audit.record(submission.project_id, "probed", submission.subject_kind, submission.subject_id,
                                 actor="probe", reason=_summary(result), submission_id=submission.id)
        policy = await self._reg.policies.find(submission.project_id, ToolsPolicy.DOC_ID)
        if policy is not None and policy.spec.auto_approve_clean and result.clean and result.tools:
            try:
                await self.approve(submission.project_id, submission.id, "policy:auto-approve-clean",
                                   "clean probe; project policy auto-approves", auto=True)
            except Conflict as exc:  # edited, rejected or decided meanwhile: left to an admin
                log.info("approvals: no auto-approval of %s: %s", submission.id, exc)
                return "probed"
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
        """Publishes the subject only if the submission is still probed when the decision is written (a
        concurrent reject wins or loses as a whole: 409) and was probed against the subject's current definition
        (409 definition_changed: submit again). An edit landing between that check and the subject's write still
        leaves the subject unapproved (409 too; the submission then records the approval of the probed
        definition)."""
        submission = await self._reg.submissions.get(project_id, submission_id)
        _require_state(submission, ("probed",), "only a probed submission can be approved.")
        if any(f.severity == "error" and f.check in ("egress", "reachable", "speaks_mcp", "lists_tools", "openapi")
               for f in submission.findings):
            raise Conflict("the probe failed; fix the server and submit it again.", code="probe_failed")
        subject = await self._subject(project_id, submission.subject_kind, submission.subject_id)
        current = subject_hash(subject)
        if submission.probed_hash != current:
            raise _changed(submission.subject_kind, subject.id, submission.probed_hash, current)
        plan = await self._reg.register_tools(project_id, subject.id, subject.spec.namespace,
                                              "mcp" if submission.subject_kind == "mcp_server" else "api",
                                              submission.tools, submission.bindings)

        def decided(s: Submission) -> None:
            _require_state(s, ("probed",), "only a probed submission can be approved.")
            s.findings = [*s.findings, *plan.collisions][:500]
            s.enter("approved", actor, reason, self.clock())
        submission = await self._reg.submissions.update(project_id, submission_id, decided)
        await self._set_approval(project_id, submission.subject_kind, subject.id, "approved", publish=True,
                                 base_url=submission.server_info.get("base_url"), probed_hash=current)
        await self._audit.record(project_id, "auto_approved" if auto else "approved", submission.subject_kind,
                                 subject.id, actor=actor, reason=reason, submission_id=submission_id)
        return submission

    async def reject(self, project_id: str, submission_id: str, actor: str, reason: str) -> Submission:
        def rejected(s: Submission) -> None:
            _require_state(s, REJECTABLE_STATES, "it can no longer be rejected.")
            s.enter("rejected", actor, reason, self.clock())
        submission = await self._reg.submissions.update(project_id, submission_id, rejected)
        await self._set_approval(project_id, submission.subject_kind, submission.subject_id, "rejected")
        await self._audit.record(project_id, "rejected", submission.subject_kind, submission.subject_id,
                                 actor=actor, reason=reason, submission_id=submission_id)
        return submission

    async def get(self, project_id: str, submission_id: str) -> Submission:
        try:
            return await self._reg.submissions.get(project_id, submission_id)
        except NotFound:
            raise NotFound(f"submission '{submission_id}' does not exist.", code="submission_not_found") from None


def _require_state(s: Submission, allowed: tuple[str, ...], why: str) -> None:
    if s.state not in allowed:
        raise Conflict(f"submission '{s.id}' is {s.state}; {why}", code="invalid_state",
                       details={"state": s.state})


def _changed(kind: str, id: str, probed: str | None, current: str) -> Conflict:
    noun = "MCP server" if kind == "mcp_server" else "API source"
    return Conflict(f"the {noun} '{id}' changed since it was probed ({', '.join(IDENTITY_FIELDS[kind])}); submit it "
                    "again to probe its current definition.", code="definition_changed",
                    details={"probed_hash": probed, "current_hash": current})


def _probing(s: Submission, now: datetime) -> None:
    _require_state(s, ("queued", "probing"), "it is no longer waiting for a probe.")
    s.probe_attempts = min(s.probe_attempts + 1, 1000)
    if s.state != "probing":
        s.enter("probing", "probe", "", now)


def _summary(result: ProbeResult) -> str:
    counts = {sev: sum(f.severity == sev for f in result.findings) for sev in ("error", "warning")}
    return f"{len(result.tools)} tools; {counts['error']} errors, {counts['warning']} warnings"


def seconds_in_state(submission: Submission, now: datetime) -> float:
    return max(0.0, (now - submission.entered_at()).total_seconds())
