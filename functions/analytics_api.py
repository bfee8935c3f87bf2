"""Operate: analytics (series, breakdowns, cross-pillar call graph), SLA tracking and adoption. Admin only.

Reads come from the hourly aggregates the rollup timer writes (functions/monitoring_timers.py): cheap at any
traffic, as fresh as the last rollup. The call graph reads the raw log (bounded)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from functions.requestlog_api import FILTERS, project_of, query_of
from shared.domain.base import AppModel, Pillar, utcnow
from shared.domain.projects import Project
from shared.domain.monitoring import AdoptionQuery, AnalyticsQuery, LogFilter, SlaQuery
from shared.monitoring.adoption import Adoption, AdoptionSources, ProjectInputs, adoption
from shared.monitoring.paging import list_all
from shared.monitoring.analytics import CallGraph, Group, Point, breakdown, call_graph, timeseries
from shared.monitoring.sla import WindowSla, sla
from shared.domain.key_requests import KeyRequest
from shared.domain.keys import VirtualKey
from shared.monitoring.tables import ReadTable
from shared.pillars.models.domain import Model
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard

RANGE = FILTERS[:2]
DIMS = (("pillar", "models, tools or agents."), ("resource", "Model, tool or agent name."),
        ("key_id", "Virtual key id."))


class Series(AppModel):
    interval: str
    points: list[Point]


class Breakdown(AppModel):
    by: str
    groups: list[Group]


class SlaReport(AppModel):
    windows: list[WindowSla]



def build(log_table: Callable[[], ReadTable], analytics_table: Callable[[], ReadTable], projects: Repository[Project],
          keys: Repository[VirtualKey], key_requests: Repository[KeyRequest], models: Repository[Model],
          admin: Guard, *, max_body_bytes: int, adoption_sources: Callable[[], AdoptionSources] | None = None
          ) -> ApiBlueprint:
    """The tables are opened on first use (inside the worker's event loop); the repositories feed adoption, and so
    do the tools and agents pillars' counters (`adoption_sources`, built on first use)."""
    api = ApiBlueprint("analytics", max_body_bytes=max_body_bytes)

    @api.route("manage/projects/{project}/analytics/timeseries", "GET", name="manage_analytics_timeseries",
               summary="Requests, errors, tokens, cost, latency p50/p95/p99, overhead, cache hits, failovers and "
                       "guardrail blocks per hour or day.", guard=admin, response=Series,
               query=RANGE + DIMS + (("interval", "hour (default) or day."),))
    async def series(call: Call):
        q = query_of(call, AnalyticsQuery)
        return Series(interval=q.interval,
                      points=await timeseries(analytics_table(), project_of(call), q, utcnow()))

    @api.route("manage/projects/{project}/analytics/breakdown", "GET", name="manage_analytics_breakdown",
               summary="The same figures grouped by pillar, resource (model/tool/agent) or key.", guard=admin,
               response=Breakdown, query=RANGE + DIMS + (("by", "pillar, resource (default), key, or one "
                                                                 "pillar's resources: model, tool, agent."),))
    async def groups(call: Call):
        q = query_of(call, AnalyticsQuery)
        return Breakdown(by=q.by, groups=await breakdown(analytics_table(), project_of(call), q,
                                                         utcnow()))

    @api.route("manage/projects/{project}/analytics/call-graph", "GET", name="manage_analytics_call_graph",
               summary="Which agents used which models and tools (calls sharing a correlation id).", guard=admin,
               response=CallGraph, query=RANGE)
    async def graph(call: Call):
        f = query_of(call, LogFilter)
        return await call_graph(log_table(), project_of(call), f, utcnow())

    @api.route("manage/projects/{project}/sla", "GET", name="manage_project_sla",
               summary="Availability and latency SLOs over rolling windows: attainment, error budget left, "
                       "burn rate.", guard=admin, response=SlaReport,
               query=(("pillar", "models, tools or agents."), ("availability_target", "% (default 99.9)."),
                      ("latency_threshold_ms", "Default 2000."), ("latency_target", "% (default 99).")))
    async def project_sla(call: Call):
        q = query_of(call, SlaQuery)
        return SlaReport(windows=await sla(analytics_table(), project_of(call), q, utcnow()))

    @api.route("manage/adoption", "GET", name="manage_adoption",
               summary="Adoption: governed requests per month, registrations, active developers, pillars "
                       "enabled, virtual-key adoption, time to first call, approval SLA attainment.",
               guard=admin, response=Adoption,
               query=(("months", "1-3 (default 3)."), ("approval_sla_hours", "Default 24.")))
    async def report(call: Call):
        q = query_of(call, AdoptionQuery)
        gate = asyncio.Semaphore(16)

        src = adoption_sources() if adoption_sources is not None else AdoptionSources()

        async def inputs_of(p: Project) -> ProjectInputs:
            async with gate:
                timings = await src.tool_approvals(p.id) if src.tool_approvals is not None else []
                return ProjectInputs(project=p, keys=await list_all(keys, p.id),
                                     requests=await list_all(key_requests, p.id), tool_approvals=timings)

        inputs = list(await asyncio.gather(*(inputs_of(p) for p in await list_all(projects, None))))

        async def model_count(project: str) -> int:
            return len(await list_all(models, project))

        counters = {Pillar.models: model_count, Pillar.tools: src.tools, Pillar.agents: src.agents}
        return await adoption(analytics_table(), inputs, counters, q, utcnow(), extra=src.extra)

    return api
