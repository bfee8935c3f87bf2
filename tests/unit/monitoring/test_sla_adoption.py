"""SLA windows and adoption metrics against hand-computed values from `known_calls()`."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.base import Pillar
from shared.domain.key_requests import KeyRequest
from shared.domain.keys import VirtualKey
from shared.domain.monitoring import AdoptionQuery, SlaQuery
from shared.domain.projects import Project
from shared.monitoring.adoption import ProjectInputs, adoption
from shared.monitoring.memtable import MemoryTable
from shared.monitoring.rollup import rollup
from shared.monitoring.sla import sla
from tests.unit.monitoring.calls import NOW, T0, entity, known_calls, table_with


async def aggregates(extra=()):
    agg = MemoryTable()
    await rollup(table_with(known_calls() + list(extra)), agg, ["p1", "p2"], NOW, lookback_hours=4)
    return agg


async def test_sla_windows_error_budget_and_burn_rate():
    agg = await aggregates()
    windows = {w.window: w for w in await sla(agg, "p1", SlaQuery(latency_threshold_ms=250, latency_target=90),
                                              NOW)}
    assert windows["1h"].availability.calls == 0 and windows["1h"].availability.burn_rate is None
    a, lat = windows["6h"].availability, windows["6h"].latency
    # 17 calls, 2 are 5xx (the 429 is the caller's): 15 good against 99.9 %
    assert (a.calls, a.good, a.attained_pct) == (17, 15, pytest.approx(88.235294))
    assert a.burn_rate == pytest.approx((2 / 17) / 0.001) and a.error_budget_left == pytest.approx(1 - (2 / 17) / 0.001)
    # latency ≤ 250 ms: all but the 300 ms and 900 ms calls
    assert (lat.good, lat.burn_rate) == (15, pytest.approx((2 / 17) / 0.1))
    assert windows["30d"].availability.calls == 17
    tools = await sla(agg, "p1", SlaQuery(pillar="tools"), NOW)
    assert tools[-1].availability.calls == 1


def key(id, project, revoked=False):
    return VirtualKey(id=id, project_id=project, name=id, prefix="sk", hash="h",
                      revoked_at=NOW if revoked else None)


def req(id, project, created, decided=None, key_id=None, requester="alice"):
    return KeyRequest(id=id, project_id=project, requester=requester, name="k", created_at=created,
                      decided_at=decided, state="approved" if decided else "pending", key_id=key_id)


async def test_adoption_metrics():
    agg = await aggregates([entity("p2", T0 + timedelta(minutes=1), key=None)])
    p1 = Project(id="p1", name="p1", created_at=T0 - timedelta(hours=2),
                 pillars={"models": {"enabled": True}, "tools": {"enabled": True}})
    p2 = Project(id="p2", name="p2", created_at=T0 - timedelta(minutes=30), pillars={"models": {"enabled": True}})
    inputs = [
        ProjectInputs(project=p1, keys=[key("k1", "p1"), key("k2", "p1")], requests=[
            req("r1", "p1", T0 - timedelta(hours=30), T0 - timedelta(hours=29), key_id="k1"),
            req("r2", "p1", T0 - timedelta(hours=50), T0),
            req("r3", "p1", NOW - timedelta(hours=25))]),
        ProjectInputs(project=p2, keys=[key("k1", "p2", revoked=True)], requests=[
            req("r4", "p2", T0 - timedelta(hours=2), T0 - timedelta(hours=1), key_id="k1")]),
    ]

    async def two(project):
        return 2

    async def one(project):
        return 1

    a = await adoption(agg, inputs, {Pillar.models: two, Pillar.tools: one, Pillar.agents: None},
                       AdoptionQuery(), NOW)
    assert a.governed_requests_by_month == {"2026-09": 0, "2026-10": 0, "2026-11": 19}
    assert a.registered == {"models": 4, "tools": 2, "agents": None}
    assert a.projects_with_pillar == {"models": 2, "tools": 1, "agents": 0} and a.projects == 2
    assert a.active_keys_this_month == 3  # p1/k1, p1/k2, p2/k1
    assert a.active_developers_this_month == 2  # alice (p1/k1 and p2/k1), p1/k2 issued without a request
    assert a.projects_with_live_key == 1 and a.virtual_key_call_share == pytest.approx(18 / 19, abs=1e-6)
    assert a.time_to_first_call_hours_median == pytest.approx((2.0 + 0.5) / 2) and a.time_to_first_call_measured == 2
    assert (a.approvals.decided, a.approvals.within_sla, a.approvals.pending_past_sla) == (3, 2, 1)
    assert a.approvals.attainment_pct == pytest.approx(66.6667)
