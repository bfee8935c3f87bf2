"""Rollups and analytics reads, checked against numbers computed by hand from `known_calls()`."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest

from shared.domain.monitoring import AnalyticsQuery, LogFilter
from shared.monitoring import histogram
from shared.monitoring.analytics import breakdown, call_graph, timeseries, total
from shared.monitoring.memtable import MemoryTable
from shared.monitoring.rollup import rollup
from tests.unit.monitoring.calls import NOW, T0, entity, known_calls, table_with

WINDOW = AnalyticsQuery(since=(T0 - timedelta(hours=1)).isoformat(), until=NOW.isoformat())


def window(**kw) -> AnalyticsQuery:
    return AnalyticsQuery(**{**WINDOW.model_dump(), **kw})


async def rolled(extra=()):
    log, agg = table_with(known_calls() + list(extra)), MemoryTable()
    await rollup(log, agg, ["p1", "p2"], NOW, lookback_hours=3)
    return log, agg


def close(got, want):
    assert got is not None and abs(got - want) <= want * histogram.RELATIVE_ERROR, (got, want)


async def test_hourly_series_matches_hand_computed_numbers():
    _, agg = await rolled()
    h10, h11 = await timeseries(agg, "p1", WINDOW, NOW)
    assert h10.start == T0 and h11.start == T0 + timedelta(hours=1)
    s = h10.summary
    assert (s.requests, s.errors, s.error_rate) == (10, 2, 0.2)
    assert (s.prompt_tokens, s.completion_tokens, s.total_tokens) == (100, 50, 150)
    assert s.cost_usd == pytest.approx(0.10) and s.latency_ms_mean == 55.0 and s.overhead_ms_mean == 5.5
    close(s.latency_ms_p50, 50)  # nearest rank: 5th of 10..100
    close(s.latency_ms_p95, 100) and close(s.latency_ms_p99, 100)
    close(s.overhead_ms_p50, 5)
    assert s.failovers == 1 and s.failovers_by_backend == {"a": 1}
    t = h11.summary
    assert (t.requests, t.errors, t.quota_refusals, t.cached_tokens) == (7, 1, 1, 7)
    assert t.cost_usd == pytest.approx(2.0) and t.cache_hit_rate == pytest.approx(1 / 7, abs=1e-6)
    close(t.latency_ms_p50, 200)  # 50, 200, 200, 200, 200, 300, 900 → 4th
    close(t.latency_ms_p95, 900)


async def test_daily_series_and_breakdowns_add_up():
    _, agg = await rolled()
    (day,) = await timeseries(agg, "p1", window(interval="day"), NOW)
    assert day.summary.requests == 17 and day.summary.errors == 3
    by_res = {(g.pillar, g.resource): g.summary.requests for g in await breakdown(agg, "p1", WINDOW, NOW)}
    assert by_res == {("models", "gpt"): 15, ("tools", "search"): 1, ("agents", "planner"): 1}
    by_key = {g.key_id: g.summary.cost_usd for g in
              await breakdown(agg, "p1", window(by="key"), NOW)}
    assert by_key == {"k1": pytest.approx(0.10), "k2": pytest.approx(2.0)}
    tools = await total(agg, "p1", window(pillar="tools"), NOW)
    assert tools.requests == 1 and tools.cache_hits == 1
    assert (await total(agg, "p2", WINDOW, NOW)).requests == 1


async def test_rollup_is_idempotent_counts_late_rows_and_drops_vanished_groups():
    log, agg = await rolled()
    snapshot = dict(agg.rows)
    await rollup(log, agg, ["p1", "p2"], NOW, lookback_hours=3)
    assert agg.rows == snapshot  # re-run: the very same table
    late = entity("p1", T0 + timedelta(minutes=30), latency=10.0)  # arrives after the first run
    log.rows[(late["PartitionKey"], late["RowKey"])] = late
    for key in [k for k, e in log.rows.items() if e.get("key_id") == "k2"]:
        del log.rows[key]  # e.g. removed by retention
    await rollup(log, agg, ["p1", "p2"], NOW, lookback_hours=3)
    h10, h11 = await timeseries(agg, "p1", WINDOW, NOW)
    assert h10.summary.requests == 11 and h11.summary.requests == 2
    assert {e["key_id"] for e in agg.rows.values() if e["project_id"] == "p1"} == {"k1"}


async def test_reads_touch_aggregates_not_the_raw_log():
    log, agg = await rolled()
    log.queries = agg.queries = 0
    await timeseries(agg, "p1", AnalyticsQuery(since=(NOW - timedelta(days=30)).isoformat(),
                                               until=NOW.isoformat()), NOW)
    assert log.queries == 0 and agg.queries == 1  # one range query over the 31 day partitions


async def test_call_graph_links_agents_to_the_models_and_tools_they_used():
    log, _ = await rolled()
    graph = await call_graph(log, "p1", LogFilter(since=T0.isoformat(), until=NOW.isoformat()), NOW)
    assert graph.correlations == 1 and not graph.truncated
    assert [(e.source, e.target, e.calls) for e in graph.edges] == [("agents/planner", "models/gpt", 1),
                                                                   ("agents/planner", "tools/search", 1)]


@pytest.mark.parametrize("value", [0.2, 1.0, 3.7, 42.0, 999.9, 12_345.0, 4_000_000.0])
def test_histogram_error_bound_holds(value):
    h: dict[int, int] = {}
    histogram.add(h, value)
    got = histogram.percentile(h, 50)
    assert abs(got - value) <= value * histogram.RELATIVE_ERROR + 1e-3
    assert histogram.decode(histogram.encode(h)) == h
    assert math.isclose(histogram.RELATIVE_ERROR, 0.0247, abs_tol=1e-3)
