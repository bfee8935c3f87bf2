"""SLA tracking over rolling windows, from the hourly aggregates: availability and latency SLOs, error budget
left and burn rate (Google SRE workbook definitions).

- availability: good = calls without a 5xx (4xx are the caller's — refused keys, quotas, bad input);
- latency: good = calls at or under the threshold, counted from the histogram (a call within ±2.5 % of the
  threshold may land on either side: the bucket containing the threshold counts as good when its midpoint does);
- error budget left = 1 − bad / ((1 − target) · calls); burn rate = (bad / calls) / (1 − target): 1.0 spends the
  budget exactly over the window, 14.4 over one hour is the classic fast-burn page.
Windows are whole hours ending with the current (partial) hour.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..domain.base import AppModel
from ..domain.monitoring import AnalyticsQuery, SlaQuery
from . import histogram
from .aggregate import Aggregate
from .analytics import aggregates
from .rollup import hour_floor

WINDOWS = {"1h": 1, "6h": 6, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}


class Objective(AppModel):
    target_pct: float
    calls: int
    good: int
    attained_pct: float | None
    error_budget_left: float | None  # fraction of the budget left; negative once overspent
    burn_rate: float | None


class WindowSla(AppModel):
    window: str
    availability: Objective
    latency: Objective


def objective(target_pct: float, calls: int, good: int) -> Objective:
    if calls == 0:
        return Objective(target_pct=target_pct, calls=0, good=0, attained_pct=None, error_budget_left=None,
                         burn_rate=None)
    bad_rate = (calls - good) / calls
    allowed = 1 - target_pct / 100
    return Objective(target_pct=target_pct, calls=calls, good=good, attained_pct=round(100 * good / calls, 6),
                     error_budget_left=round(1 - bad_rate / allowed, 6), burn_rate=round(bad_rate / allowed, 6))


def fast_calls(hist: dict[int, int], threshold_ms: float) -> int:
    return sum(n for i, n in hist.items() if histogram.representative(i) <= threshold_ms)


async def sla(agg_table: Any, project: str, q: SlaQuery, now: datetime) -> list[WindowSla]:
    end = hour_floor(now) + timedelta(hours=1)
    span = AnalyticsQuery(since=end - timedelta(hours=max(WINDOWS.values())), until=end, pillar=q.pillar)
    rows = await aggregates(agg_table, project, span, now)
    out = []
    for name, hours in WINDOWS.items():
        acc = Aggregate()
        for dims, agg in rows:
            if dims["hour"] >= end - timedelta(hours=hours):
                acc.merge(agg)
        out.append(WindowSla(window=name,
                             availability=objective(q.availability_target, acc.requests,
                                                    acc.requests - acc.server_errors),
                             latency=objective(q.latency_target, acc.requests,
                                               fast_calls(acc.latency_hist, q.latency_threshold_ms))))
    return out
