"""What monitoring reads from the tools pillar, plugged in by the composition root (shared/services.py).

Alert sources (`shared/alerts/sources.GatewaySources`):

- approvals waiting past their SLA: server/API-source submissions not yet decided (queued, probing, probed) and
  per-call approvals still pending (and not expired), submitted longer than the SLA ago;
- quarantined tools: tools whose upstream definition drifted from the pinned one (blocked until re-approved).
Adoption (`shared/monitoring/adoption.py`): registered tools (any status but rejected) and toolboxes per project,
and each server/API-source submission's timing (submitted → approved or rejected) for approval SLA attainment.
Each reads the project's own documents (one partition)."""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.monitoring.adoption import Timing
from shared.monitoring.paging import list_all
from shared.storage.repository import Repository

from .call_approvals import CallApproval
from .domain import Submission, ToolDefinition, Toolbox

UNDECIDED = frozenset({"queued", "probing", "probed"})


class ToolApprovalsWaiting:
    def __init__(self, submissions: Repository[Submission], calls: Repository[CallApproval]) -> None:
        self._submissions, self._calls = submissions, calls

    async def __call__(self, project: str, sla: timedelta, now: datetime) -> int:
        cutoff = now - sla
        waiting = sum(1 for s in await list_all(self._submissions, project)
                      if s.state in UNDECIDED and s.created_at <= cutoff)
        return waiting + sum(1 for c in await list_all(self._calls, project)
                             if c.state == "pending" and c.expires_at > now and c.created_at <= cutoff)


class QuarantinedTools:
    def __init__(self, tools: Repository[ToolDefinition]) -> None:
        self._tools = tools

    async def __call__(self, project: str) -> int:
        return sum(1 for t in await list_all(self._tools, project) if t.status == "quarantined")


class ToolsAdoption:
    def __init__(self, tools: Repository[ToolDefinition], toolboxes: Repository[Toolbox],
                 submissions: Repository[Submission]) -> None:
        self._tools, self._boxes, self._submissions = tools, toolboxes, submissions

    async def tools(self, project: str) -> int:
        return sum(1 for t in await list_all(self._tools, project) if t.status != "rejected")

    async def toolboxes(self, project: str) -> int:
        return len(await list_all(self._boxes, project))

    async def approval_timings(self, project: str) -> list[Timing]:
        out = []
        for s in await list_all(self._submissions, project):
            decided = next((c.at for c in reversed(s.history) if c.state in ("approved", "rejected")), None) \
                if s.state in ("approved", "rejected") else None
            out.append(Timing(created_at=s.created_at, decided_at=decided))
        return out
