"""Operate: the request log — filtered, paged queries and streamed CSV / JSON-lines exports. Admin role only."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse

from shared.domain.base import AppModel, utcnow
from shared.domain.monitoring import LogExport, LogQuery
from shared.monitoring.logquery import export_lines, iterate, query_page
from shared.monitoring.rows import LogRow
from shared.monitoring.tables import ReadTable
from shared.web.api import ApiBlueprint, Call, Guard
from shared.errors import NotFound
from shared.web.inputs import validate

FILTERS = (("since", "Start, ISO 8601 with zone (inclusive; default 24 h before `until`)."),
           ("until", "End, ISO 8601 with zone (exclusive; default now). At most 92 days after `since`."),
           ("pillar", "models, tools or agents."), ("resource", "Model, tool or agent name."),
           ("key_id", "Virtual key id."), ("status", "HTTP status, 100-599."),
           ("outcome", "ok (status < 400) or error."), ("error_code", "The gateway's error code."),
           ("correlation_id", "Calls that share a correlation id (cross-pillar)."))
PAGING = (("limit", "Rows per page, 1-1000 (default 100)."), ("cursor", "Opaque cursor from the previous page."))


class LogRowOut(LogRow):
    model_config = {"extra": "ignore"}


class LogPageOut(AppModel):
    items: list[LogRowOut]
    next_cursor: str | None = Field(description="Present while there may be more rows; pass it back unchanged.")
    scanned: int = Field(description="Rows read for this page (each page reads at most 5,000).")
    skipped: int = Field(description="Stored rows that no longer validate: not served.")


def project_of(call: Call) -> str:
    """The path's project id, as a partition-key prefix: no '|' (ids are slugs), so no range reaches another's."""
    pid = call.path("project")
    if "|" in pid:
        raise NotFound(f"project '{pid}' does not exist.")
    return pid


def query_of(call: Call, model: type[BaseModel]) -> BaseModel:
    return validate(model, dict(call.req.query_params), "query")


def build(log_table: Callable[[], ReadTable], admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    """`log_table`: the request-log table, opened on first use (inside the worker's event loop)."""
    api = ApiBlueprint("request-log", max_body_bytes=max_body_bytes)

    @api.route("manage/projects/{project}/request-log", "GET", name="manage_query_request_log",
               summary="A project's governed calls (every pillar), newest first, filtered and paged.",
               guard=admin, response=LogPageOut, query=FILTERS + PAGING)
    async def query(call: Call):
        q = query_of(call, LogQuery)
        page = await query_page(log_table(), project_of(call), q, utcnow())
        return LogPageOut(items=[LogRowOut.model_validate(r.model_dump()) for r in page.rows],
                          next_cursor=page.next_cursor, scanned=page.scanned, skipped=page.skipped)

    @api.route("manage/projects/{project}/request-log/export", "GET", name="manage_export_request_log",
               summary="Stream a project's request log as CSV or JSON lines (no prompts or completions).",
               guard=admin, query=FILTERS + (("format", "jsonl (default) or csv."),),
               media_type="application/x-ndjson")
    async def export(call: Call):
        q = query_of(call, LogExport)
        now: datetime = utcnow()
        chunks = export_lines(iterate(log_table(), project_of(call), q, now), q.format)
        try:  # the first chunk before the status line: a storage outage is still a clean 503, not a cut stream
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""

        async def body():
            yield first
            async for chunk in chunks:
                yield chunk

        media = "text/csv; charset=utf-8" if q.format == "csv" else "application/x-ndjson"
        name = f"request-log-{re.sub(r'[^A-Za-z0-9._-]', '_', call.path('project'))}-{now:%Y%m%dT%H%M%SZ}.{q.format}"
        return StreamingResponse(body(), media_type=media,
                                 headers={"content-disposition": f'attachment; filename="{name}"'})

    return api
