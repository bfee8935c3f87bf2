"""Alert rules: measurement, state changes, signed webhook deliveries with retries — against a real receiver on
127.0.0.1 through the egress-guarded client. Sync failures and tool approvals use fake sources (their real
sources belong to the tools pillar); everything else reads the real request log / registry code paths."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from shared.alerts.evaluate import run_alerts
from shared.alerts.sources import GatewaySources
from shared.alerts.webhook import WebhookNotifier, verify
from shared.domain.key_requests import KeyRequest
from shared.domain.monitoring import AlertRule, AlertRuleSpec
from shared.domain.quotas import Quota, QuotaLimits
from shared.egress import EgressPolicy
from shared.monitoring.memtable import MemoryTable
from shared.monitoring.rollup import rollup
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.upstreams.egress_transport import guarded_client
from tests.unit.monitoring.calls import NOW, T0, entity, known_calls, table_with
from tests.unit.monitoring.receiver import Receiver

SECRET = "whsec-test-123"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


class World:
    def __init__(self, log_rows, *, sync=None, tool_approvals=None, loopback=True):
        store = MemoryDocumentStore()
        self.rules, self.quotas = Repository(store, AlertRule), Repository(store, Quota)
        self.requests = Repository(store, KeyRequest)
        self.log, self.agg = table_with(log_rows), MemoryTable()
        self.sources = GatewaySources(log_table=self.log, agg_table=self.agg, quotas=self.quotas,
                                      key_requests=self.requests, sync=sync, tool_approvals=tool_approvals)
        self.sleeps: list[float] = []

        async def sleep(s):
            self.sleeps.append(s)

        self.http = guarded_client(EgressPolicy(allow_loopback=loopback))
        env = {"UPSTREAM_SECRET_HOOK": SECRET}
        self.notify = WebhookNotifier(self.http, env.get, attempts=3, timeout=0.3, sleep=sleep)

    async def add(self, **spec):
        return await self.rules.create(AlertRule(id=spec["id"], project_id="p1", spec=AlertRuleSpec(**spec)))

    async def run(self, now=NOW):
        return await run_alerts(self.rules, ["p1"], self.sources, self.notify, now)

    async def rule(self, id):
        return await self.rules.get("p1", id)


def errors_at(n_ok, n_err, at):
    return [entity("p1", at + timedelta(seconds=i), status=500 if i < n_err else 200, latency=100.0 * (i + 1))
            for i in range(n_ok + n_err)]


async def test_error_rate_fires_once_with_a_signed_payload_then_resolves(receiver):
    w = World(errors_at(7, 3, NOW - timedelta(minutes=5)))
    await w.add(id="errors", kind="error_rate", threshold=20, window_minutes=15, min_requests=5,
                webhook_url=receiver.url, webhook_secret_setting="UPSTREAM_SECRET_HOOK")
    run = await w.run()
    assert run.fired == 1
    rule = await w.rule("errors")
    assert rule.state == "firing" and rule.value == 30.0 and rule.deliveries[-1].status == "delivered"
    (headers, body), = receiver.received
    assert verify(SECRET.encode(), headers["x-gateway-signature"], body, now=time.time())
    assert not verify(b"wrong", headers["x-gateway-signature"], body, now=time.time())
    assert not verify(SECRET.encode(), headers["x-gateway-signature"], body, now=time.time() + 3600)  # replay
    assert b'"event":"firing"' in body and SECRET.encode() not in body
    await w.run()  # still firing: no second notification
    assert len(receiver.received) == 1
    later = NOW + timedelta(minutes=30)  # the errors left the window; fresh healthy calls
    for e in errors_at(10, 0, later - timedelta(minutes=2)):
        w.log.rows[(e["PartitionKey"], e["RowKey"])] = e
    assert (await w.run(later)).resolved == 1
    assert (await w.rule("errors")).state == "ok" and b'"event":"resolved"' in receiver.received[-1][1]


async def test_rate_rules_need_min_requests_and_latency_uses_p95(receiver):
    w = World(errors_at(4, 0, NOW - timedelta(minutes=5)))  # latencies 100..400 ms
    await w.add(id="slow", kind="latency_slo", threshold=300, min_requests=4)
    await w.add(id="few", kind="error_rate", threshold=0, min_requests=5)
    await w.run()
    slow, few = await w.rule("slow"), await w.rule("few")
    assert slow.state == "firing" and abs(slow.value - 400) <= 10 and few.value is None and few.state == "ok"


async def test_receiver_failures_are_retried_with_backoff_and_recorded(receiver):
    receiver.script = [500, "hang", 503]  # 500, then a timeout, then 503: every attempt fails
    w = World(errors_at(0, 10, NOW - timedelta(minutes=1)))
    await w.add(id="e1", kind="error_rate", threshold=50, webhook_url=receiver.url)
    await w.run()
    d = (await w.rule("e1")).deliveries[-1]
    assert (d.status, d.attempts) == ("failed", 3) and "503" in d.last_error
    assert w.sleeps == [1.0, 2.0] and len(receiver.received) == 3


async def test_a_transient_failure_then_success_is_delivered(receiver):
    receiver.script = [502, 200]
    w = World(errors_at(0, 10, NOW - timedelta(minutes=1)))
    await w.add(id="e1", kind="error_rate", threshold=50, webhook_url=receiver.url)
    await w.run()
    d = (await w.rule("e1")).deliveries[-1]
    assert (d.status, d.attempts) == ("delivered", 2)


async def test_a_4xx_is_not_retried_and_a_missing_secret_is_not_sent_unsigned(receiver):
    receiver.script = [410]
    w = World(errors_at(0, 10, NOW - timedelta(minutes=1)))
    await w.add(id="gone", kind="error_rate", threshold=50, webhook_url=receiver.url)
    await w.add(id="nosecret", kind="error_rate", threshold=50, webhook_url=receiver.url,
                webhook_secret_setting="UPSTREAM_SECRET_MISSING")
    await w.run()
    assert (await w.rule("gone")).deliveries[-1].attempts == 1
    d = (await w.rule("nosecret")).deliveries[-1]
    assert d.status == "failed" and "UPSTREAM_SECRET_MISSING" in d.last_error and len(receiver.received) == 1


async def test_egress_policy_applies_to_the_address_connected(receiver):
    w = World(errors_at(0, 10, NOW - timedelta(minutes=1)), loopback=False)
    await w.add(id="e1", kind="error_rate", threshold=50, webhook_url=receiver.url)
    await w.run()
    d = (await w.rule("e1")).deliveries[-1]
    assert d.status == "failed" and "EgressRefused" in d.last_error and receiver.received == []


async def test_failover_breaker_budget_approvals_and_sync_sources():
    rows = known_calls()
    rows += [entity("p1", NOW - timedelta(minutes=1), status=503, error_code="no_backend_available")]
    rows += [entity("p1", NOW - timedelta(minutes=2), failovers=2)]
    fake_sync_calls = []

    async def sync(project, since):
        fake_sync_calls.append((project, since))
        return 3

    async def tool_approvals(project, sla, now):
        return 1

    w = World(rows, sync=sync, tool_approvals=tool_approvals)
    await w.quotas.create(Quota(id="project.p1", project_id="p1", scope="project", target="p1",
                                limits=QuotaLimits(cost_per_month_usd=4.0)))
    await w.requests.create(KeyRequest(id="old", project_id="p1", requester="dev", name="k",
                                       created_at=NOW - timedelta(hours=5)))
    await w.requests.create(KeyRequest(id="new", project_id="p1", requester="dev", name="k",
                                       created_at=NOW - timedelta(minutes=5)))
    await rollup(w.log, w.agg, ["p1"], NOW, lookback_hours=3)
    for spec in (dict(id="fo", kind="failover_spike", threshold=1), dict(id="br", kind="breaker_open", threshold=0),
                 dict(id="budget", kind="budget", threshold=50), dict(id="sync", kind="sync_failure", threshold=2),
                 dict(id="appr", kind="approvals_waiting", threshold=1, window_minutes=60)):
        await w.add(**spec)
    run = await w.run()
    values = {r: (await w.rule(r)).value for r in ("fo", "br", "budget", "sync", "appr")}
    # cost this month: 0.10 (hour 10) + 2.0 (hour 11) of a 4.0 budget = 52.5 %; 1 old key request + 1 tool approval
    assert values == {"fo": 2, "br": 1, "budget": 52.5, "sync": 3, "appr": 2}
    assert run.fired == 5 and fake_sync_calls == [("p1", NOW - timedelta(minutes=15))]
