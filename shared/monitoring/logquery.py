"""Request-log queries: one project, newest first, filtered, paged with opaque cursors, and streamed exports.

The table is partitioned by `project|day` and rows are keyed newest-first inside a day, so a query walks day
partitions from `until` back to `since` and asks Tables only for the RowKey range of the window. Equality filters
Tables can evaluate are pushed down; pillar/resource (absent from rows written before the pipeline) are matched
here. Each page does bounded work (`MAX_SCAN` rows read): a sparse filter returns a short page with a cursor.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from ..domain.monitoring import LogFilter, LogQuery
from ..errors import BadRequest
from .rows import EXPORT_COLUMNS, LogRow, from_entity

MAX_SCAN = 5000
EXPORT_MAX_ROWS = 1_000_000
_EPOCH_RK = 10**13


def row_key_bound(at: datetime) -> str:
    """RowKeys sort newest first: `10**13 - ms`. Rows at or after `at` have keys below this bound."""
    return f"{_EPOCH_RK - int(at.timestamp() * 1000) + 1:013d}"


def days_desc(since: datetime, until: datetime) -> list[str]:
    last = (until - timedelta(microseconds=1)).date()
    out, day = [], last
    while day >= since.date():
        out.append(day.strftime("%Y%m%d"))
        day -= timedelta(days=1)
    return out


def fingerprint(project: str, q: LogFilter) -> str:
    spec = q.model_dump(mode="json", exclude={"limit", "cursor", "format"})
    return hashlib.sha256(orjson.dumps([project, spec], option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def encode_cursor(fp: str, day: str, row_key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"f": fp, "d": day, "k": row_key})).decode().rstrip("=")


def decode_cursor(cursor: str, fp: str) -> tuple[str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        day, key, got = data["d"], data["k"], data["f"]
        if not (isinstance(day, str) and day.isdigit() and len(day) == 8 and isinstance(key, str)):
            raise ValueError
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("The cursor is not one this API returned.", code="invalid_cursor") from None
    if got != fp:
        raise BadRequest("The cursor belongs to a query with other filters; start again without it.",
                         code="invalid_cursor")
    return day, key


def odata(project: str, day: str, q: LogFilter, since: datetime, until: datetime,
          after: str | None) -> tuple[str, dict[str, Any]]:
    clauses = ["PartitionKey eq @pk", "RowKey ge @lo", "RowKey lt @hi"]
    params: dict[str, Any] = {"pk": f"{project}|{day}", "lo": row_key_bound(until), "hi": row_key_bound(since)}
    if after is not None:
        clauses.append("RowKey gt @after")
        params["after"] = after
    for name in ("key_id", "status", "error_code"):
        if getattr(q, name) is not None:
            clauses.append(f"{name} eq @{name}")
            params[name] = getattr(q, name)
    if q.outcome is not None:
        clauses.append("status ge @errmin" if q.outcome == "error" else "status lt @errmin")
        params["errmin"] = 400
    return " and ".join(clauses), params


def matches(row: LogRow, q: LogFilter) -> bool:
    """What Tables could not evaluate (derived columns), plus a re-check of what it did (defence in depth)."""
    return ((q.pillar is None or row.pillar == q.pillar.value) and (q.resource is None or row.resource == q.resource)
            and (q.key_id is None or row.key_id == q.key_id) and (q.status is None or row.status == q.status)
            and (q.error_code is None or row.error_code == q.error_code)
            and (q.outcome is None or row.is_error == (q.outcome == "error"))
            and (q.correlation_id is None or row.correlation_id == q.correlation_id))


@dataclass
class LogPage:
    rows: list[LogRow]
    next_cursor: str | None
    scanned: int = 0
    skipped: int = 0  # stored rows that no longer validate
    days: list[str] = field(default_factory=list)


async def query_page(table: Any, project: str, q: LogQuery, now: datetime, *, max_scan: int = MAX_SCAN) -> LogPage:
    since, until = q.window(now)
    fp = fingerprint(project, q)
    start_day, after = decode_cursor(q.cursor, fp) if q.cursor else (None, None)
    page = LogPage(rows=[], next_cursor=None)
    for day in days_desc(since, until):
        if start_day is not None and day > start_day:
            continue
        flt, params = odata(project, day, q, since, until, after if day == start_day else None)
        async for entity in table.query_entities(flt, parameters=params, results_per_page=min(1000, 2 * q.limit)):
            page.scanned += 1
            row = from_entity(entity)
            if row is None:
                page.skipped += 1
            elif matches(row, q):
                page.rows.append(row)
            if len(page.rows) >= q.limit or page.scanned >= max_scan:
                page.next_cursor = encode_cursor(fp, day, entity["RowKey"])
                return page
    return page


async def iterate(table: Any, project: str, q: LogFilter, now: datetime,
                  max_rows: int = EXPORT_MAX_ROWS) -> AsyncIterator[LogRow]:
    """Every matching row, newest first, a page at a time (memory stays bounded whatever the range)."""
    spec = q.model_dump(exclude={"format"})
    fixed = LogQuery(**{**spec, "until": q.window(now)[1], "limit": 1000})  # a moving `now` must not shift pages
    sent = 0
    while True:
        page = await query_page(table, project, fixed, now)
        for row in page.rows:
            if sent >= max_rows:
                return
            sent += 1
            yield row
        if page.next_cursor is None:
            return
        fixed = fixed.model_copy(update={"cursor": page.next_cursor})


def _cell(value: Any) -> Any:
    # Exports are opened in spreadsheets: a cell starting with =, +, -, @ would be a formula (CSV injection).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


async def export_lines(rows: AsyncIterator[LogRow], fmt: str) -> AsyncIterator[bytes]:
    if fmt == "jsonl":
        async for row in rows:
            yield orjson.dumps(row.export()) + b"\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    async for row in rows:
        writer.writerow([_cell(v) for v in row.export().values()])
        if buf.tell() > 64_000:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()
