"""The approvals audit trail: append-only records of who did what to which server, API or tool, when and why."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...domain.base import utcnow
from ...storage.repository import Repository
from .domain import ApprovalAction, ApprovalRecord


class AuditTrail:
    def __init__(self, records: Repository[ApprovalRecord], clock: Callable[[], datetime] = utcnow) -> None:
        self._records = records
        self.clock = clock

    async def record(self, project_id: str, action: ApprovalAction, subject_kind: str, subject_id: str, *,
                     actor: str, reason: str = "", diff: list[dict[str, Any]] | None = None,
                     submission_id: str | None = None) -> ApprovalRecord:
        now = self.clock()
        return await self._records.create(ApprovalRecord(
            id=f"audit-{now.strftime('%Y%m%dT%H%M%S')}-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}", project_id=project_id,
            action=action, subject_kind=subject_kind, subject_id=subject_id, submission_id=submission_id,
            actor=actor, reason=reason[:2000], diff=diff, at=now))

    async def of(self, project_id: str, *, subject_id: str | None = None, limit: int = 200) -> list[ApprovalRecord]:
        filters = {"subject_id": subject_id} if subject_id else {}
        page = await self._records.list(project_id, limit=limit, **filters)
        return sorted(page.items, key=lambda r: (r.at, r.id))  # the id's ns stamp orders same-instant records
