"""What alert rules measure, behind one small interface so each pillar's helper can plug in its own source.

Implemented here from what exists: call statistics from the request log (error rate, p95 latency, failovers,
refusals because every backend's breaker was open), the month's cost against the project's cost quota, and
pending key requests past their SLA. The pillars' own sources are `ExtraSource` callables the composition root
passes in (shared/services.py): agent sync failures (shared/pillars.agents.monitoring.py), tool submissions
and per-call approvals waiting, quarantined tools (shared/pillars.tools.monitoring.py). Without one, its
rules evaluate to "no data" and never fire.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..domain.key_requests import KeyRequest
from ..domain.monitoring import AnalyticsQuery, LogFilter
from ..domain.quotas import Quota
from ..monitoring import histogram
from ..monitoring.analytics import total
from ..monitoring.logquery import iterate
from ..monitoring.paging import list_all
from ..storage.repository import Repository

BREAKER_CODES = frozenset({"no_backend_available"})  # every target's breaker open (or cooling down)
MAX_WINDOW_ROWS = 200_000  # a rule reads at most this many rows of its window (documented)


@dataclass
class WindowStats:
    requests: int = 0
    server_errors: int = 0
    failovers: int = 0
    breaker_refusals: int = 0
    latency_hist: dict[int, int] = field(default_factory=dict)

    @property
    def p95_ms(self) -> float | None:
        return histogram.percentile(self.latency_hist, 95)


class AlertSources(Protocol):
    async def window_stats(self, project: str, f: LogFilter, now: datetime) -> WindowStats: ...

    async def budget_used_pct(self, project: str, now: datetime) -> float | None: ...

    async def sync_failures(self, project: str, since: datetime) -> int | None: ...

    async def approvals_waiting(self, project: str, sla: timedelta, now: datetime) -> int | None: ...

    async def tools_quarantined(self, project: str) -> int | None: ...


ExtraSource = Callable[..., Awaitable[int | None]]


class GatewaySources:
    def __init__(self, *, log_table: Any, agg_table: Any, quotas: Repository[Quota],
                 key_requests: Repository[KeyRequest], sync: ExtraSource | None = None,
                 tool_approvals: ExtraSource | None = None, quarantined: ExtraSource | None = None) -> None:
        self._log, self._agg = log_table, agg_table
        self._quotas, self._requests = quotas, key_requests
        self._sync, self._tool_approvals, self._quarantined = sync, tool_approvals, quarantined

    async def window_stats(self, project: str, f: LogFilter, now: datetime) -> WindowStats:
        s = WindowStats()
        async for row in iterate(self._log, project, f, now, max_rows=MAX_WINDOW_ROWS):
            s.requests += 1
            s.server_errors += row.status >= 500
            s.failovers += row.failovers
            s.breaker_refusals += row.error_code in BREAKER_CODES
            histogram.add(s.latency_hist, row.latency_ms)
        return s

    async def budget_used_pct(self, project: str, now: datetime) -> float | None:
        limits = [q.limits.cost_per_month_usd for q in await list_all(self._quotas, project)
                  if q.scope == "project" and q.limits.cost_per_month_usd]
        if not limits:
            return None
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        spent = (await total(self._agg, project, AnalyticsQuery(since=month, until=now), now)).cost_usd
        return round(100 * spent / min(limits), 4)

    async def sync_failures(self, project: str, since: datetime) -> int | None:
        return None if self._sync is None else await self._sync(project, since)

    async def approvals_waiting(self, project: str, sla: timedelta, now: datetime) -> int | None:
        waiting = sum(1 for r in await list_all(self._requests, project)
                      if r.state == "pending" and r.created_at <= now - sla)
        if self._tool_approvals is not None:
            waiting += await self._tool_approvals(project, sla, now) or 0
        return waiting

    async def tools_quarantined(self, project: str) -> int | None:
        return None if self._quarantined is None else await self._quarantined(project)
