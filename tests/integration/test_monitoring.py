"""Monitoring against real Azurite and a real gateway process: the known calls of the unit tests written by the
real request-log writer, then queried, rolled up, read and expired by the real Tables client (same numbers as the
memory table gives); and the HTTP surfaces end to end over calls made through the gateway."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import httpx
import pytest
from azure.data.tables.aio import TableClient

from dev.emulators import Emulators
from shared.domain.monitoring import AnalyticsQuery, LogQuery
from shared.monitoring.analytics import timeseries
from shared.monitoring.logquery import query_page
from shared.monitoring.retention import purge_expired
from shared.monitoring.rollup import rollup
from shared.monitoring.tables import ReadTable
from shared.usage.table_batch import submit
from tests.integration.models_support import backend, chat, setup_model
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import wait_until
from tests.unit.monitoring.calls import NOW, T0, known_calls
from tests.unit.monitoring.test_analytics import WINDOW


@pytest.fixture
async def tables(emulators: Emulators):
    made = []

    def table(prefix: str) -> TableClient:
        t = TableClient.from_connection_string(emulators.storage_connection_string, prefix + uuid.uuid4().hex[:10])
        made.append(t)
        return t

    yield table
    for t in made:
        await t.delete_table()
        await t.close()


async def test_queries_rollups_and_retention_on_azurite(tables):
    log, agg = tables("log"), tables("agg")
    await log.create_table()
    for e in known_calls():  # one transaction per partition, as the real writer sends them
        await submit(log, [e])
    rows, cursor = [], None
    while True:
        page = await query_page(ReadTable(log), "p1", LogQuery(limit=4, outcome="error", cursor=cursor), NOW)
        rows += page.rows
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(r.status for r in rows) == [429, 500, 500]
    await ReadTable(agg).ensure()
    await rollup(log, agg, ["p1"], NOW, 3)
    await rollup(log, agg, ["p1"], NOW, 3)  # idempotent on the real store too
    h10, h11 = await timeseries(ReadTable(agg), "p1", WINDOW, NOW)
    assert (h10.summary.requests, h10.summary.errors, h10.summary.failovers_by_backend) == (10, 2, {"a": 1})
    assert h11.summary.requests == 7 and h11.summary.cached_tokens == 7
    assert abs(h10.summary.latency_ms_p50 - 50) <= 50 * 0.025
    gone = await purge_expired(log, T0 + timedelta(days=30, hours=1), 30, round_rows=3)
    assert gone.deleted == 11 and gone.complete  # hour 10 of p1 (10 rows) and p2's one row
    assert await timeseries(ReadTable(tables("missing")), "p1", WINDOW, NOW) == []  # no table: empty


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("mon") as f:
        yield f


def test_request_log_api_and_export_over_real_calls(admin: httpx.Client, gateway, fake):
    pid, model, secret = setup_model(admin, [backend(fake, "a")])
    for _ in range(3):
        assert chat(gateway.url, secret, model).status_code == 200
    url = f"/manage/projects/{pid}/request-log"

    def logged():  # the writer flushes in batches: wait for all three rows, then page through them
        r = admin.get(url, params={"limit": 10})
        return r if r.status_code == 200 and len(r.json()["items"]) == 3 else None

    wait_until(logged, timeout=15, message="request-log rows")
    first = admin.get(url, params={"limit": 2}).json()
    assert {i["pillar"] for i in first["items"]} == {"models"} and first["items"][0]["resource"] == model
    second = admin.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    bad = admin.get(url, params={"limit": 2, "status": 500, "cursor": first["next_cursor"]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert admin.get(url, params={"since": "yesterday"}).status_code == 422
    csv_body = admin.get(url + "/export", params={"format": "csv"})
    assert csv_body.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(csv_body.text)))) == 3
    assert len(admin.get(url + "/export").text.splitlines()) == 3
    anon = httpx.get(gateway.url + url)
    assert anon.status_code == 401
    dev = httpx.get(gateway.url + url, headers={"Authorization": f"Bearer {secret}"})
    assert dev.status_code in (401, 403)  # a data-plane key never opens the control plane


def test_alert_rules_and_analytics_surfaces(admin: httpx.Client):
    pid = "p-" + uuid.uuid4().hex[:10]
    assert admin.post("/manage/projects", json={"id": pid, "name": pid}).status_code == 201
    base = f"/manage/projects/{pid}/alert-rules"
    refused = admin.post(base, json={"id": "r1", "kind": "error_rate", "threshold": 5,
                                     "webhook_url": "http://10.1.2.3/hook"})
    assert refused.status_code == 422  # egress policy: a private address is not a webhook destination
    ok = admin.post(base, json={"id": "r1", "kind": "error_rate", "threshold": 5,
                                "webhook_secret_setting": "UPSTREAM_SECRET_TEST_A"})
    assert ok.status_code == 201 and ok.json()["state"] == "ok"
    assert admin.post(base, json={"id": "r2", "kind": "budget", "threshold": 1e12}).status_code == 422
    assert admin.post(base, json={"id": "r3", "kind": "budget", "threshold": 80,
                                  "webhook_secret_setting": "GATEWAY_ADMIN_KEY"}).status_code == 422
    assert [r["spec"]["id"] for r in admin.get(base).json()["items"]] == ["r1"]
    assert admin.delete(f"{base}/r1").status_code == 204
    series = admin.get(f"/manage/projects/{pid}/analytics/timeseries", params={"interval": "day"})
    assert series.status_code == 200 and series.json() == {"interval": "day", "points": []}
    assert admin.get(f"/manage/projects/{pid}/analytics/breakdown", params={"by": "nope"}).status_code == 422
    assert admin.get(f"/manage/projects/{pid}/sla").json()["windows"][0]["window"] == "1h"
    assert admin.get(f"/manage/projects/{pid}/analytics/breakdown", params={"by": "tool"}).json() == {
        "by": "tool", "groups": []}
    assert admin.post(base, json={"id": "q1", "kind": "tools_quarantined", "threshold": 0}).status_code == 201
    adoption = admin.get("/manage/adoption", params={"months": 1}, timeout=60)  # reads every project
    assert adoption.status_code == 200 and adoption.json()["projects"] >= 1
    # the tools and agents pillars report (over Cosmos): counts, not "not reported"
    registered = adoption.json()["registered"]
    assert all(isinstance(registered[k], int) for k in ("models", "tools", "agents", "toolboxes"))
    assert set(adoption.json()["tool_approvals"]) == {"decided", "within_sla", "attainment_pct", "pending_past_sla"}
