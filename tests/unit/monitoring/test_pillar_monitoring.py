"""Tools and agents in monitoring, against hand-computed values: breakdowns by model / tool / agent, the pillars'
alert sources (agent sync failures, tool approvals past their SLA, quarantined tools) through the alert timer,
adoption counters (tools, toolboxes, agents, tool approval SLA), and the cross-pillar call graph from rows the
real pipeline wrote (the correlation id an agent's calls carry)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.alerts.evaluate import AlertRun, evaluate_rule, measure
from shared.alerts.sources import GatewaySources
from shared.domain.base import Pillar
from shared.domain.key_requests import KeyRequest
from shared.domain.monitoring import AdoptionQuery, AlertRule, AlertRuleSpec, AnalyticsQuery, LogFilter
from shared.domain.projects import Project
from shared.domain.quotas import Quota
from shared.monitoring.adoption import ProjectInputs, adoption
from shared.monitoring.analytics import breakdown, call_graph
from shared.monitoring.memtable import MemoryTable
from shared.monitoring.rollup import rollup
from shared.pillars.agents.domain import Agent, AgentSpec, SyncRun
from shared.pillars.agents.monitoring import AgentsAdoption, AgentSyncFailures
from shared.pillars.tools.call_approvals import CallApproval
from shared.pillars.tools.domain import (PinnedDefinition, StateChange, Submission, ToolDefinition, Toolbox,
                                         ToolboxOwner, ToolboxSpec)
from shared.pillars.tools.monitoring import QuarantinedTools, ToolApprovalsWaiting, ToolsAdoption
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from tests.unit.monitoring.calls import NOW, T0, known_calls, table_with

HASH = "sha256:" + "0" * 64


async def rolled():
    log = table_with(known_calls())
    agg = MemoryTable()
    await rollup(log, agg, ["p1", "p2"], NOW, lookback_hours=4)
    return log, agg


@pytest.mark.parametrize("by, expected", [
    ("tool", [("tools", "search", 1, 0, 1.0, 50.0)]),
    ("agent", [("agents", "planner", 1, 0, 0.0, 900.0)]),
    # 10 calls in hour 10 (two 500s), 4 in hour 11 (one 429), 1 correlated call: 15 calls, 3 errors, 550 tokens
    ("model", [("models", "gpt", 15, 3, 0.0, None)])])
async def test_breakdowns_by_one_pillars_resources(by, expected):
    _, agg = await rolled()
    groups = await breakdown(agg, "p1", AnalyticsQuery(since=T0.isoformat(), until=NOW.isoformat(), by=by), NOW)
    got = [(g.pillar, g.resource, g.summary.requests, g.summary.errors, g.summary.cache_hit_rate,
            g.summary.latency_ms_mean if expected[0][5] is not None else None) for g in groups]
    assert got == expected
    if by == "model":
        assert groups[0].summary.total_tokens == 10 * 15 + 4 * 100


async def seeded_store():
    store = MemoryDocumentStore()
    runs = Repository(store, SyncRun)
    for i, (status, ago) in enumerate([("failed", 5), ("partial", 10), ("succeeded", 1), ("failed", 120)]):
        await runs.create(SyncRun(id=f"run{i}", project_id="p1", cloud="bedrock", connection="c", duration_ms=1,
                                  started_at=NOW - timedelta(minutes=ago), status=status))
    await runs.create(SyncRun(id="other", project_id="p2", cloud="vertex", connection="c", duration_ms=1,
                              started_at=NOW - timedelta(minutes=1), status="failed"))
    subs = Repository(store, Submission)
    for sid, state, ago, decided_after in [("s1", "queued", 120, None), ("s2", "probed", 30, None),
                                           ("s3", "approved", 180, 30), ("s4", "rejected", 300, 180)]:
        created = NOW - timedelta(minutes=ago)
        history = [StateChange(state=state, at=created + timedelta(minutes=decided_after), by="admin")] \
            if decided_after is not None else []
        await subs.create(Submission(id=sid, project_id="p1", subject_kind="mcp_server", subject_id=sid,
                                     submitted_by="dev", state=state, created_at=created, history=history))
    calls = Repository(store, CallApproval)
    for cid, state, expires in [("c1", "pending", 60), ("c2", "pending", -1), ("c3", "approved", 60)]:
        await calls.create(CallApproval(id=cid, project_id="p1", toolbox="dev", tool="gh__x", caller="k1",
                                        digest=HASH, state=state, created_at=NOW - timedelta(minutes=120),
                                        expires_at=NOW + timedelta(minutes=expires)))
    tools = Repository(store, ToolDefinition)
    for name, status in [("a", "quarantined"), ("b", "quarantined"), ("c", "approved"), ("d", "rejected")]:
        await tools.create(ToolDefinition(id=f"gh__{name}", project_id="p1", server_id="gh", original_name=name,
                                          name=f"gh__{name}", definition=PinnedDefinition(name=name),
                                          pinned_hash=HASH, status=status))
    boxes = Repository(store, Toolbox)
    for bid in ("dev", "ops"):
        await boxes.create(Toolbox(id=bid, project_id="p1", spec=ToolboxSpec(id=bid, tools=[]), owner=ToolboxOwner()))
    agents = Repository(store, Agent)
    for aid, lifecycle in [("planner", "published"), ("old", "retired"), ("next", "draft")]:
        spec = AgentSpec.model_validate({"name": aid, "interfaces": [{"url": "https://a.example/rpc"}]})
        await agents.create(Agent(id=aid, project_id="p1", spec=spec, lifecycle=lifecycle))
    return store


async def test_pillar_alert_sources_fire_through_the_alert_timer():
    store = await seeded_store()
    log, agg = await rolled()
    sources = GatewaySources(log_table=log, agg_table=agg, quotas=Repository(store, Quota),
                             key_requests=Repository(store, KeyRequest),
                             sync=AgentSyncFailures(Repository(store, SyncRun)),
                             tool_approvals=ToolApprovalsWaiting(Repository(store, Submission),
                                                                 Repository(store, CallApproval)),
                             quarantined=QuarantinedTools(Repository(store, ToolDefinition)))

    def rule(kind: str, window: int = 15) -> AlertRule:
        return AlertRule(id=kind.replace("_", "-"), project_id="p1",
                         spec=AlertRuleSpec(id=kind.replace("_", "-"), kind=kind, threshold=1, window_minutes=window))

    # sync: failed 5 min and partial 10 min ago (the 2 h old failure and p2's are outside)
    assert await measure(rule("sync_failure"), sources, NOW) == 2
    # SLA 60 min: s1 queued 2 h ago and c1 pending 2 h ago; s2 is younger, c2 expired, s3/s4/c3 decided
    assert await measure(rule("approvals_waiting", 60), sources, NOW) == 2
    assert await measure(rule("tools_quarantined"), sources, NOW) == 2
    rules = Repository(store, AlertRule)
    run = AlertRun()
    for kind in ("sync_failure", "tools_quarantined"):
        created = await rules.create(rule(kind))

        async def notify(*a):
            raise AssertionError("no webhook configured")

        await evaluate_rule(created, rules, sources, notify, NOW, run)
    assert run.fired == 2 and {r.state for r in (await rules.list("p1")).items} == {"firing"}


async def test_adoption_counts_tools_toolboxes_agents_and_tool_approval_sla():
    store = await seeded_store()
    _, agg = await rolled()
    tools = ToolsAdoption(Repository(store, ToolDefinition), Repository(store, Toolbox), Repository(store, Submission))
    p1 = Project(id="p1", name="p1", created_at=T0 - timedelta(hours=2),
                 pillars={"models": {"enabled": True}, "tools": {"enabled": True}, "agents": {"enabled": True}})
    inputs = [ProjectInputs(project=p1, keys=[], requests=[], tool_approvals=await tools.approval_timings("p1"))]

    async def models(project):
        return 3

    a = await adoption(agg, inputs, {Pillar.models: models, Pillar.tools: tools.tools,
                                     Pillar.agents: AgentsAdoption(Repository(store, Agent))},
                       AdoptionQuery(approval_sla_hours=1), NOW, extra={"toolboxes": tools.toolboxes})
    # tools: a, b (quarantined) and c (approved), not the rejected d; agents: planner and the draft, not the retired
    assert a.registered == {"models": 3, "tools": 3, "agents": 2, "toolboxes": 2}
    assert a.projects_with_pillar == {"models": 1, "tools": 1, "agents": 1}
    # s3 decided in 30 min (within 1 h), s4 in 3 h (late); s1 undecided for 2 h (past SLA), s2 for 30 min
    t = a.tool_approvals
    assert (t.decided, t.within_sla, t.attainment_pct, t.pending_past_sla) == (2, 1, 50.0, 1)


async def test_the_call_graph_from_rows_the_pipeline_wrote_with_an_agents_correlation_id():
    """An agent call, then the agent's own model and tool calls carrying the traceparent it received: the rows the
    pipeline writes share the correlation id, and the call graph links the agent to both."""
    import httpx

    from tests.unit.monitoring.test_trace_carriers import TP, TRACE
    from shared.domain.base import utcnow
    from tests.unit.test_pipeline import PID, EchoToolsSpec, Replica, Tool, Upstreams, exchange
    from shared.domain.projects import GlobalFlags
    from shared.flags.service import FlagService
    from shared.pipeline import Pipeline
    from shared.quotas.book import QuotaBook
    from shared.quotas.enforcer import QuotaEnforcer
    from shared.quotas.store import MemoryCounterStore
    from shared.routing.breaker import Breakers
    from shared.usage.log import MemoryUsageSink, UsageLog

    store, sink = MemoryDocumentStore(), MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(Upstreams())) as http:
        spec = EchoToolsSpec({n: Tool(n, [Replica("a", "http://a/")]) for n in ("planner", "search", "gpt")}, http)
        pipeline = Pipeline(spec, quotas=QuotaBook(Repository(store, Quota), ttl=60, max_stale=600),
                            enforcer=QuotaEnforcer(MemoryCounterStore()), breakers=Breakers(), usage=usage,
                            flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60,
                                              max_stale=600))
        for resource, pillar, headers in [("planner", Pillar.agents, {"x-correlation-id": TRACE}),
                                          ("search", Pillar.tools, {"traceparent": TP}),
                                          ("gpt", Pillar.models, {"traceparent": TP}),
                                          ("search", Pillar.tools, {})]:  # an unrelated call
            x = exchange(resource)
            x.pillar, x.headers = pillar, headers
            await pipeline.run(x)
    await usage.close()
    log = table_with([r.to_entity() for r in sink.records])
    # the pipeline stamps rows with the wall clock; `until` is exclusive at millisecond resolution
    now = utcnow() + timedelta(seconds=1)
    graph = await call_graph(log, PID, LogFilter(since=(now - timedelta(hours=1)).isoformat()), now)
    assert graph.correlations == 1 and graph.rows_read == 4
    assert [(e.source, e.target, e.calls) for e in graph.edges] == [("agents/planner", "models/gpt", 1),
                                                                   ("agents/planner", "tools/search", 1)]


async def test_services_wire_the_pillars_monitoring_sources():
    """The composition root hands the alert timer and the adoption report the tools and agents sources."""
    from shared.config import Settings
    from shared.services import Services

    store = await seeded_store()
    services = Services(Settings(AzureWebJobsStorage="UseDevelopmentStorage=true"), store=store)
    try:
        sources = services.alert_sources
        assert await sources.tools_quarantined("p1") == 2
        assert await sources.sync_failures("p1", NOW - timedelta(minutes=15)) == 2
        assert await sources.approvals_waiting("p1", timedelta(hours=1), NOW) == 2
        adoption_sources = services.adoption_sources
        assert await adoption_sources.tools("p1") == 3 and await adoption_sources.agents("p1") == 2
        assert await adoption_sources.extra["toolboxes"]("p1") == 2
    finally:
        await services.close()
