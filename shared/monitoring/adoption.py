"""Adoption metrics (the seed's success criteria), from the registry and the hourly aggregates.

Definitions (docs/admin-guide.md): a governed request is any logged call through the gateway; an active developer
is a distinct requester of a key that made calls this month (an admin-issued key with no request counts as one);
virtual-key adoption is the share of projects with at least one live key and the share of this month's calls
made with a virtual key; time to first governed call is measured for projects created inside the report's range
(earliest hour with a call − creation); approval SLA attainment is over key requests decided in the range.
Registered models, tools, agents and toolboxes come from the pillars' counters (functions/analytics_api.py);
tool approval SLA attainment is over server/API-source submissions decided in the range.
"""
from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain.base import AppModel, Pillar
from ..domain.key_requests import KeyRequest
from ..domain.keys import VirtualKey
from ..domain.monitoring import AdoptionQuery, AnalyticsQuery
from ..domain.projects import Project
from .analytics import aggregates
from .rollup import NO_KEY

Counter = Callable[[str], Awaitable[int]]
CONCURRENCY = 16  # projects read at once (one aggregate range query + the pillar counters each)


class Timing(AppModel):
    """One approval of another kind (a tool submission): when it was asked for, when (if) it was decided."""

    created_at: datetime
    decided_at: datetime | None = None


@dataclass
class AdoptionSources:
    """The tools and agents pillars' adoption counters (None: that pillar reports nothing); wired in
    shared/services.py (`adoption_sources`) from shared/pillars/{tools,agents}/monitoring.py."""

    tools: Counter | None = None
    agents: Counter | None = None
    extra: dict[str, Counter] = field(default_factory=dict)  # other registered things, e.g. "toolboxes"
    tool_approvals: Callable[[str], Awaitable[list["Timing"]]] | None = None


class ProjectInputs(AppModel):
    project: Project
    keys: list[VirtualKey]
    requests: list[KeyRequest]
    tool_approvals: list[Timing] = []


class ApprovalSla(AppModel):
    decided: int
    within_sla: int
    attainment_pct: float | None
    pending_past_sla: int


class Adoption(AppModel):
    since: datetime
    until: datetime
    governed_requests_by_month: dict[str, int]
    registered: dict[str, int | None]
    projects: int
    projects_with_pillar: dict[str, int]
    active_keys_this_month: int
    active_developers_this_month: int
    projects_with_live_key: int
    virtual_key_call_share: float | None
    time_to_first_call_hours_median: float | None
    time_to_first_call_measured: int
    approvals: ApprovalSla
    tool_approvals: ApprovalSla  # server / API-source submissions: submitted → approved or rejected


def approval_sla(timings: list[Timing], since: datetime, now: datetime, sla: timedelta) -> ApprovalSla:
    """Attainment over what was decided in the range; still-undecided ones older than the SLA are counted apart."""
    decided = within = late = 0
    for t in timings:
        if t.decided_at is not None and t.decided_at >= since:
            decided += 1
            within += t.decided_at - t.created_at <= sla
        elif t.decided_at is None and now - t.created_at > sla:
            late += 1
    return ApprovalSla(decided=decided, within_sla=within, pending_past_sla=late,
                       attainment_pct=round(100 * within / decided, 4) if decided else None)


def month_start(at: datetime, back: int = 0) -> datetime:
    y, m = at.year, at.month - back
    while m <= 0:
        y, m = y - 1, m + 12
    return at.replace(year=y, month=m, day=1, hour=0, minute=0, second=0, microsecond=0)


async def adoption(agg_table: Any, inputs: list[ProjectInputs], counters: dict[Pillar, Counter | None],
                   q: AdoptionQuery, now: datetime, extra: dict[str, Counter] | None = None) -> Adoption:
    """`counters`: registered resources per pillar (None: not reported); `extra`: other registered things by name
    (e.g. "toolboxes"), reported under `registered` too."""
    since, this_month = month_start(now, q.months - 1), month_start(now)
    by_month: dict[str, int] = {month_start(now, b).strftime("%Y-%m"): 0 for b in reversed(range(q.months))}
    registered: dict[str, int | None] = {p.value: (0 if counters.get(p) else None) for p in Pillar}
    registered.update({name: 0 for name in extra or {}})
    every = {**{p.value: c for p, c in counters.items() if c is not None}, **(extra or {})}
    with_pillar = {p.value: 0 for p in Pillar}
    active_keys: set[tuple[str, str]] = set()
    developers: set[str] = set()
    calls_month = keyed_month = live_key_projects = 0
    first_call: list[float] = []
    sla = timedelta(hours=q.approval_sla_hours)
    decided = within = pending_late = 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def read(inp: ProjectInputs) -> tuple[list[Any], dict[Pillar, int]]:
        async with gate:
            rows = await aggregates(agg_table, inp.project.id, AnalyticsQuery(since=since, until=now), now)
            counts = {name: await c(inp.project.id) for name, c in every.items()}
            return rows, counts

    reads = await asyncio.gather(*(read(inp) for inp in inputs))
    tool_timings: list[Timing] = []
    for inp, (rows, counts) in zip(inputs, reads):
        p = inp.project
        tool_timings += inp.tool_approvals
        for name, n in counts.items():
            registered[name] = (registered[name] or 0) + n
        for pillar, state in p.pillars.items():
            with_pillar[pillar.value] += state.enabled
        live_key_projects += any(k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
                                 for k in inp.keys)
        requester = {r.key_id: r.requester for r in inp.requests if r.key_id}
        hours: dict[datetime, int] = defaultdict(int)
        for dims, agg in rows:
            by_month[dims["hour"].strftime("%Y-%m")] = by_month.get(dims["hour"].strftime("%Y-%m"), 0) + agg.requests
            hours[dims["hour"]] += agg.requests
            if dims["hour"] >= this_month and agg.requests:
                calls_month += agg.requests
                if dims["key_id"] not in (None, NO_KEY):
                    keyed_month += agg.requests
                    active_keys.add((p.id, dims["key_id"]))
                    developers.add(requester.get(dims["key_id"]) or f"key:{p.id}/{dims['key_id']}")
        if p.created_at >= since and hours:
            first = min(h for h, n in hours.items() if n)
            first_call.append(max(0.0, (first - p.created_at).total_seconds() / 3600))
        for r in inp.requests:
            if r.decided_at is not None and r.decided_at >= since:
                decided += 1
                within += r.decided_at - r.created_at <= sla
            elif r.state == "pending" and now - r.created_at > sla:
                pending_late += 1
    return Adoption(since=since, until=now, governed_requests_by_month=by_month, registered=registered,
                    projects=len(inputs), projects_with_pillar=with_pillar, active_keys_this_month=len(active_keys),
                    active_developers_this_month=len(developers), projects_with_live_key=live_key_projects,
                    virtual_key_call_share=round(keyed_month / calls_month, 6) if calls_month else None,
                    time_to_first_call_hours_median=round(statistics.median(first_call), 3) if first_call else None,
                    time_to_first_call_measured=len(first_call),
                    approvals=ApprovalSla(decided=decided, within_sla=within,
                                          attainment_pct=round(100 * within / decided, 4) if decided else None,
                                          pending_past_sla=pending_late),
                    tool_approvals=approval_sla(tool_timings, since, now, sla))
