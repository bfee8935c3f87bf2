"""Per-call approval of sensitive tools: each call waits until an approver accepts *that exact call* — the same
caller, tool and argument digest — before its expiry. Stored in Cosmos (any instance sees a decision at once);
the document id is derived from (caller, tool, digest), so a retried call finds its own approval and two
instances cannot create two approvals for one call."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...domain.base import Contract, Entity, utcnow
from ...errors import AlreadyExists, Conflict, NotFound
from ...storage.repository import Repository

CallApprovalState = Literal["pending", "approved", "rejected", "used"]


class CallApproval(Entity):
    kind: ClassVar[str] = "mcp_call_approval"
    toolbox: str = Field(max_length=128)
    tool: str = Field(max_length=128)
    caller: str = Field(max_length=256)       # the key id of the caller
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    arguments_preview: str = Field(default="", max_length=4000)  # what the approver reads
    state: CallApprovalState = "pending"
    expires_at: datetime
    decided_by: str | None = Field(default=None, max_length=256)
    reason: str = Field(default="", max_length=2000)


class ApprovalDecision(Contract):
    decision: Literal["approve", "reject"]
    reason: str = Field(default="", max_length=2000)


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
        """The approval for this exact call, created pending on first sight (or renewed once expired/rejected
        -- a new request for approval). An `approved` one is consumed by `consume` after the call runs."""
        aid = approval_id(caller, tool, digest)
        found = await self._repo.find(project_id, aid)
        now = self._clock()
        if found is not None and found.expires_at > now and found.state in ("pending", "approved", "rejected"):
            return found
        fresh = CallApproval(id=aid, project_id=project_id, toolbox=toolbox, tool=tool, caller=caller,
                             digest=digest, arguments_preview=preview[:4000],
                             expires_at=now + timedelta(seconds=self._ttl))
        if found is None:
            try:
                return await self._repo.create(fresh)
            except AlreadyExists:  # another instance created it first: theirs is the one
                return await self._repo.get(project_id, aid)
        fresh.etag = found.etag
        return await self._repo.rewrite(fresh, if_match=found.etag)

    async def consume(self, approval: CallApproval) -> None:
        """One approval, one call: an approved call is marked used (a replay needs a new approval)."""
        try:
            await self._repo.update(approval.project_id, approval.id, _mark_used)
        except (NotFound, Conflict):
            pass  # decided/expired concurrently; the call already ran under the approval we read

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


def _mark_used(a: CallApproval) -> None:
    if a.state != "approved":
        raise Conflict("not approved", code="approval_not_approved")
    a.state = "used"


def preview(arguments: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()[:4000]
