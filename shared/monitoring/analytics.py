"""Analytics reads: time series and breakdowns from the hourly aggregates, and cross-pillar call graphs.

Reads touch aggregate rows only (one partition per project-day), never the raw log: a 30-day series over
millions of calls reads at most 30·24·(groups) rows. Numbers are as fresh as the last rollup run.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from ..domain.base import AppModel
from ..domain.monitoring import AnalyticsQuery, LogFilter
from .aggregate import Aggregate, Summary
from .logquery import days_desc, iterate
from .rollup import NO_KEY, hour_floor


class Point(AppModel):
    start: datetime
    summary: Summary


class Group(AppModel):
    pillar: str | None = None
    resource: str | None = None
    key_id: str | None = None
    summary: Summary


async def aggregates(agg_table: Any, project: str, q: AnalyticsQuery, now: datetime
                     ) -> list[tuple[dict[str, Any], Aggregate]]:
    since, until = q.window(now)
    lo, hi = hour_floor(since), until
    out = []
    days = days_desc(since, until)
    if not days:
        return out
    # One range query over the project's day partitions (`project|yyyymmdd` sort by day; a project id holds no
    # '|', so no other project's partition falls inside the range).
    params = {"lo": f"{project}|{days[-1]}", "hi": f"{project}|{days[0]}"}
    async for e in agg_table.query_entities("PartitionKey ge @lo and PartitionKey le @hi", parameters=params):
        hour = e.get("hour")
        if not isinstance(hour, datetime):
            continue
        dims = {"hour": hour, "pillar": e.get("pillar"), "resource": e.get("resource"), "key_id": e.get("key_id")}
        if not (lo <= hour < hi):
            continue
        if q.pillar is not None and dims["pillar"] != q.pillar.value:
            continue
        if (q.resource is not None and dims["resource"] != q.resource) or (
                q.key_id is not None and dims["key_id"] != q.key_id):
            continue
        out.append((dims, Aggregate.from_properties(e)))
    return out


def _start(hour: datetime, interval: str) -> datetime:
    return hour.replace(hour=0) if interval == "day" else hour


async def timeseries(agg_table: Any, project: str, q: AnalyticsQuery, now: datetime) -> list[Point]:
    buckets: dict[datetime, Aggregate] = defaultdict(Aggregate)
    for dims, agg in await aggregates(agg_table, project, q, now):
        buckets[_start(dims["hour"], q.interval)].merge(agg)
    return [Point(start=k, summary=Summary.of(v)) for k, v in sorted(buckets.items())]


_PILLAR_OF = {"model": "models", "tool": "tools", "agent": "agents"}


async def breakdown(agg_table: Any, project: str, q: AnalyticsQuery, now: datetime) -> list[Group]:
    """Groups by pillar, resource (any pillar), key, or one pillar's resources (`model`, `tool`, `agent`)."""
    only = _PILLAR_OF.get(q.by)
    dims_by = {"pillar": ("pillar",), "key": ("key_id",)}.get(q.by, ("pillar", "resource"))
    groups: dict[tuple[Any, ...], Aggregate] = defaultdict(Aggregate)
    for dims, agg in await aggregates(agg_table, project, q, now):
        if only is not None and dims["pillar"] != only:
            continue
        groups[tuple(dims[d] for d in dims_by)].merge(agg)
    out = [Group(**{d: (None if v == NO_KEY else v) for d, v in zip(dims_by, k)}, summary=Summary.of(a))
           for k, a in groups.items()]
    return sorted(out, key=lambda g: (-g.summary.requests, str(g.pillar), str(g.resource), str(g.key_id)))


async def total(agg_table: Any, project: str, q: AnalyticsQuery, now: datetime) -> Aggregate:
    acc = Aggregate()
    for _, agg in await aggregates(agg_table, project, q, now):
        acc.merge(agg)
    return acc


class Edge(AppModel):
    source: str  # "agents/<name>"
    target: str  # "models/<name>" or "tools/<name>"
    calls: int


class CallGraph(AppModel):
    correlations: int
    edges: list[Edge]
    rows_read: int
    truncated: bool


async def call_graph(log_table: Any, project: str, f: LogFilter, now: datetime,
                     max_rows: int = 20_000) -> CallGraph:
    """Which agents used which models and tools: calls sharing a correlation id, read from the raw log (bounded
    by `max_rows`; `truncated` says the window held more)."""
    by_corr: dict[str, list[str]] = defaultdict(list)
    n = 0
    async for row in iterate(log_table, project, f, now, max_rows=max_rows):
        n += 1
        if row.correlation_id:
            by_corr[row.correlation_id].append(f"{row.pillar}/{row.resource or NO_KEY}")
    edges: Counter[tuple[str, str]] = Counter()
    for members in by_corr.values():
        for agent in {m for m in members if m.startswith("agents/")}:
            for other in members:
                if other != agent:
                    edges[(agent, other)] += 1
    return CallGraph(correlations=len(by_corr), rows_read=n, truncated=n >= max_rows,
                     edges=[Edge(source=s, target=t, calls=c) for (s, t), c in sorted(edges.items())])
