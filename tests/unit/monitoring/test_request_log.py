"""Request-log queries, cursors, exports and retention, in process against the memory table."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import orjson
import pytest

from shared.domain.monitoring import LogExport, LogQuery
from shared.errors import BadRequest
from shared.monitoring.logquery import export_lines, iterate, query_page
from shared.monitoring.retention import purge_expired
from tests.unit.monitoring.calls import NOW, T0, entity, known_calls, table_with


async def all_rows(table, **q):
    rows, cursor = [], None
    while True:
        page = await query_page(table, "p1", LogQuery(**q, cursor=cursor), NOW)
        rows += page.rows
        cursor = page.next_cursor
        if cursor is None:
            return rows


async def test_filters_newest_first_and_other_projects_never_leak():
    t = table_with(known_calls())
    rows = await all_rows(t, limit=3)
    assert len(rows) == 17 and all(r.project_id == "p1" for r in rows)
    assert [r.at for r in rows] == sorted((r.at for r in rows), reverse=True)
    assert {r.request_id for r in await all_rows(t, outcome="error")} == {"r-100300000000", "r-100700000000",
                                                                          "r-110000000000"}
    assert len(await all_rows(t, status=500)) == 2
    assert len(await all_rows(t, key_id="k2")) == 5
    assert [r.resource for r in await all_rows(t, pillar="tools")] == ["search"]
    assert len(await all_rows(t, pillar="models")) == 15  # legacy rows (no pillar) are models calls
    assert len(await all_rows(t, resource="gpt", error_code="quota_exceeded")) == 1
    assert [r.pillar for r in await all_rows(t, correlation_id="c1")] == ["models", "agents", "tools"]


async def test_time_range_is_inclusive_start_exclusive_end_across_days():
    rows = known_calls() + [entity("p1", T0 - timedelta(days=1, minutes=5))]
    t = table_with(rows)
    got = await all_rows(t, since=(T0 - timedelta(days=2)).isoformat(), until=(T0 + timedelta(minutes=3)).isoformat())
    assert [r.at for r in got] == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=1), T0,
                                   T0 - timedelta(days=1, minutes=5)]


async def test_cursor_pages_cover_everything_once_and_are_bound_to_their_filters():
    t = table_with(known_calls())
    first = await query_page(t, "p1", LogQuery(limit=5), NOW)
    assert len(first.rows) == 5 and first.next_cursor
    with pytest.raises(BadRequest) as err:
        await query_page(t, "p1", LogQuery(limit=5, status=200, cursor=first.next_cursor), NOW)
    assert err.value.code == "invalid_cursor"
    with pytest.raises(BadRequest):
        await query_page(t, "p2", LogQuery(limit=5, cursor=first.next_cursor), NOW)  # not another project's
    with pytest.raises(BadRequest):
        await query_page(t, "p1", LogQuery(cursor="not-a-cursor"), NOW)


async def test_each_page_does_bounded_work_and_a_sparse_filter_still_progresses():
    t = table_with(known_calls())
    page = await query_page(t, "p1", LogQuery(limit=5, pillar="agents"), NOW, max_scan=1)
    assert page.rows == [] and page.scanned == 1 and page.next_cursor  # short page, not a full scan
    rows = []
    while page.next_cursor:
        page = await query_page(t, "p1", LogQuery(limit=5, pillar="agents", cursor=page.next_cursor), NOW,
                                max_scan=4)
        assert page.scanned <= 4
        rows += page.rows
    assert [r.resource for r in rows] == ["planner"]


async def test_invalid_stored_rows_are_skipped_not_fatal():
    bad = entity("p1", T0)
    bad["status"] = "oops"
    t = table_with(known_calls() + [bad])
    page = await query_page(t, "p1", LogQuery(limit=1000), NOW)
    assert page.skipped == 1 and len(page.rows) == 17


async def test_exports_stream_csv_and_jsonl_without_payloads_and_defuse_formulas():
    e = entity("p1", T0, error_code="=HYPERLINK(1)", prompt="secret prompt")
    t = table_with(known_calls()[:3] + [e])
    q = LogExport(format="csv")
    body = b"".join([c async for c in export_lines(iterate(t, "p1", q, NOW), "csv")]).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 4 and "secret prompt" not in body and "prompt" not in rows[0]
    assert {r["error_code"] for r in rows} >= {"'=HYPERLINK(1)"}
    lines = b"".join([c async for c in export_lines(iterate(t, "p1", LogExport(), NOW), "jsonl")]).splitlines()
    assert len(lines) == 4 and orjson.loads(lines[0])["project_id"] == "p1"


def test_ranges_are_bounded_and_ordered():
    with pytest.raises(ValueError):
        LogQuery(since="2026-01-01T00:00:00Z", until="2026-06-01T00:00:00Z")
    with pytest.raises(ValueError):
        LogQuery(since="2026-01-02T00:00:00Z", until="2026-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        LogQuery(since="2026-01-01T00:00:00")  # no zone: ambiguous


async def test_retention_deletes_only_expired_rows_in_bounded_runs_and_is_idempotent():
    old = [entity("p1", T0 - timedelta(days=40, minutes=i)) for i in range(250)]
    old += [entity("p2", T0 - timedelta(days=31, minutes=i)) for i in range(5)]
    t = table_with(known_calls() + old)
    first = await purge_expired(t, NOW, 30, round_rows=100, max_rows=200)
    assert first.deleted == 200 and not first.complete
    second = await purge_expired(t, NOW, 30, round_rows=100, max_rows=200)
    assert second.deleted == 55 and second.complete
    again = await purge_expired(t, NOW, 30)
    assert again.deleted == 0 and again.complete
    assert len(t.rows) == len(known_calls())


async def test_a_range_defaulting_to_now_is_still_bounded_and_dates_stay_in_range():
    from shared.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        await query_page(table_with([]), "p1", LogQuery(since="2001-01-01T00:00:00Z"), NOW)
    with pytest.raises(ValueError):
        LogQuery(until="0001-01-01T00:00:00Z")
