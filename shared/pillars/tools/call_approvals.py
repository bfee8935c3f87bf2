"""Per-call approval of sensitive tools: each call waits until an approver accepts *that exact call* — the same
caller, tool and argument digest — before its expiry. Stored in Cosmos (any instance sees a decision at once);
the document id is derived from (caller, tool, digest), so a retried call finds its own approval and two
instances cannot create two approvals for one call.

One approval, one call: an `approved` approval is claimed (approved → used) with a write conditional on the ETag
of the version read approved, BEFORE the call goes upstream, so of concurrent or replayed identical calls exactly
one runs. A claimed approval stays used whatever happens next (a quota refusal, an unreachable server, an upstream
error): a sensitive call may have had its effect even when its answer is lost, so running it again needs a new
approval.

The approver reads the whole call: the canonical arguments are stored in full, and a call whose arguments are
longer than `PREVIEW_MAX_CHARS` cannot be approved per call (refused, never shown cut)."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ...domain.base import Contract, Entity, utcnow
from ...errors import AlreadyExists, Conflict, NotFound, PreconditionFailed
from ...storage.repository import Repository

CallApprovalState = Literal["pending", "approved", "rejected", "used"]
PREVIEW_MAX_CHARS = 16_000  # the canonical arguments an approver reads, whole


class CallApproval(Entity):
    kind: ClassVar[str] = "mcp_call_approval"
    toolbox: str = Field(max_length=128)
    tool: str = Field(max_length=128)
    caller: str = Field(max_length=256)       # the key id of the caller
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    arguments_preview: str = Field(default="", max_length=PREVIEW_MAX_CHARS)  # the whole canonical arguments
    state: CallApprovalState = "pending"
    expires_at: datetime
    decided_by: str | None = Field(default=None, max_length=256)
    reason: str = Field(default="", max_length=2000)


class ApprovalDecision(Contract):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000)


class ArgumentsTooLarge(Exception):
    """The canonical arguments are longer than an approver can be shown whole."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} characters > {PREVIEW_MAX_CHARS}")
        self.size = size
        self.limit = PREVIEW_MAX_CHARS


def approval_id(caller: str, tool: str, digest: str) -> str:
    return "ca-" + hashlib.sha256(f"{caller}|{tool}|{digest}".encode()).hexdigest()[:32]


class CallApprovals:
    def __init__(self, repo: Repository[CallApproval], *, ttl_seconds: int,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._repo = repo
        self._ttl = ttl_seconds
        self._clock = clock

    async def check(self, *, project_id: str, toolbox: str, tool: str, caller: str, digest: str,
                    preview: str) -> CallApproval:
        """The approval for this exact call, created pending on first sight (or renewed once expired or used --
        a new request for approval). An `approved` one runs a call only once `claim` won it."""
        aid = approval_id(caller, tool, digest)
        found = await self._repo.find(project_id, aid)
        now = self._clock()
        if found is not None and found.expires_at > now and found.state in ("pending", "approved", "rejected"):
            return found
        fresh = CallApproval(id=aid, project_id=project_id, toolbox=toolbox, tool=tool, caller=caller,
                             digest=digest, arguments_preview=preview, expires_at=now + timedelta(seconds=self._ttl))
        if found is None:
            try:
                return await self._repo.create(fresh)
            except AlreadyExists:  # another instance created it first: theirs is the one
                return await self._repo.get(project_id, aid)
        fresh.etag = found.etag
        return await self._repo.rewrite(fresh, if_match=found.etag)

    async def claim(self, approval: CallApproval) -> CallApproval | None:
        """approved → used, conditional on the ETag of the version read approved: the one call that wins may go
        upstream; None for every other (already claimed, decided again, expired)."""
        if approval.state != "approved" or approval.etag is None or approval.expires_at <= self._clock():
            return None
        try:
            return await self._repo.replace(approval.model_copy(update={"state": "used"}))
        except (PreconditionFailed, NotFound):
            return None

    async def decide(self, project_id: str, approval_id_: str, decision: ApprovalDecision, by: str
                     ) -> CallApproval:
        now = self._clock()

        def change(a: CallApproval) -> None:
            if a.state != "pending" or a.expires_at <= now:
                raise Conflict(f"approval '{a.id}' is {a.state if a.expires_at > now else 'expired'}; only a "
                               "pending approval can be decided.", code="approval_not_pending")
            a.state = "approved" if decision.decision == "approve" else "rejected"
            a.decided_by = by
            a.reason = decision.reason
            a.updated_at = now

        return await self._repo.update(project_id, approval_id_, change)

    async def pending(self, project_id: str, limit: int = 100) -> list[CallApproval]:
        page = await self._repo.list(project_id, limit=limit, state="pending")
        now = self._clock()
        return [a for a in page.items if a.state == "pending" and a.expires_at > now]


def preview(arguments: dict[str, Any]) -> str:
    """The canonical arguments (sorted keys), whole: what the approver reads. ArgumentsTooLarge past the bound."""
    text = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()
    if len(text) > PREVIEW_MAX_CHARS:
        raise ArgumentsTooLarge(len(text))
    return text
