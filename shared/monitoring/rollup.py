"""The rollup timer: request-log rows → hourly aggregates per (project, pillar, resource, key) in a Table.

Idempotent and safe with late rows by construction: each run *recomputes* every hour bucket of its lookback window
from the raw rows and replaces that hour's aggregates (upserting the new ones, deleting groups that vanished), so
running twice gives the same table, and a row that reached the log late (buffered through a Storage outage) is
counted by the next run whose window still covers its hour. Rows later than the lookback are not counted: keep
ANALYTICS_ROLLUP_LOOKBACK_HOURS above the longest buffering you expect (docs/runbook.md).

Aggregate rows: PartitionKey `project|YYYYMMDD`, RowKey `HH|pillar|resource|key` (components URL-quoted).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from .aggregate import Aggregate
from .logquery import row_key_bound
from .rows import from_entity

NO_KEY = "-"



def _replace() -> Any:
    """`UpdateMode.REPLACE`, imported when a rollup runs: the Tables SDK stays out of the app's import."""
    from azure.data.tables import UpdateMode

    return UpdateMode.REPLACE

def hour_floor(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def agg_key(hour: datetime, pillar: str, resource: str | None, key_id: str | None) -> tuple[str, str]:
    q = lambda s: quote(s or NO_KEY, safe="")  # noqa: E731 - Tables refuses / \ # ? in keys
    return f"{hour:%Y%m%d}", f"{hour:%H}|{q(pillar)}|{q(resource or NO_KEY)}|{q(key_id or NO_KEY)}"


@dataclass
class RollupResult:
    projects: int = 0
    rows_read: int = 0
    skipped: int = 0
    aggregates_written: int = 0
    aggregates_deleted: int = 0


async def _raw_rows(log_table: Any, project: str, start: datetime, end: datetime, result: RollupResult):
    day = start.date()
    while day <= end.date():
        params = {"pk": f"{project}|{day:%Y%m%d}", "lo": row_key_bound(end), "hi": row_key_bound(start)}
        async for e in log_table.query_entities("PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                                                parameters=params, results_per_page=1000):
            result.rows_read += 1
            row = from_entity(e)
            if row is None:
                result.skipped += 1
            else:
                yield row
        day += timedelta(days=1)


async def _existing(agg_table: Any, project: str, hour: datetime) -> set[str]:
    day, _ = agg_key(hour, "", None, None)
    params = {"pk": f"{project}|{day}", "lo": f"{hour:%H}|", "hi": f"{hour:%H}}}"}  # '}' sorts right after '|'
    return {e["RowKey"] async for e in agg_table.query_entities(
        "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi", parameters=params, select=["RowKey"])}


async def rollup_project(log_table: Any, agg_table: Any, project: str, now: datetime, lookback_hours: int,
                         result: RollupResult) -> None:
    start = hour_floor(now) - timedelta(hours=lookback_hours)
    end = hour_floor(now) + timedelta(hours=1)
    groups: dict[tuple[datetime, str, str | None, str | None], Aggregate] = {}
    async for row in _raw_rows(log_table, project, start, end, result):
        k = (hour_floor(row.at), row.pillar, row.resource, row.key_id)
        groups.setdefault(k, Aggregate()).add_row(row)
    hour = start
    while hour < end:
        fresh = {}
        for (h, pillar, resource, key_id), agg in groups.items():
            if h == hour:
                day, rk = agg_key(h, pillar, resource, key_id)
                fresh[rk] = {"PartitionKey": f"{project}|{day}", "RowKey": rk, "project_id": project,
                             "pillar": pillar, "resource": resource or NO_KEY, "key_id": key_id or NO_KEY,
                             "hour": h, **agg.to_properties()}
        for entity in fresh.values():
            await agg_table.upsert_entity(entity, mode=_replace())  # no stale property survives
            result.aggregates_written += 1
        for stale in await _existing(agg_table, project, hour) - fresh.keys():
            await agg_table.delete_entity(partition_key=f"{project}|{hour:%Y%m%d}", row_key=stale)
            result.aggregates_deleted += 1
        hour += timedelta(hours=1)


async def rollup(log_table: Any, agg_table: Any, projects: list[str], now: datetime,
                 lookback_hours: int) -> RollupResult:
    result = RollupResult()
    for project in projects:
        await rollup_project(log_table, agg_table, project, now, lookback_hours, result)
        result.projects += 1
    return result
