"""The request log's writer against real Azurite: types survive, keys are escaped, failures are reported."""
from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import orjson
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables.aio import TableClient

from dev.emulators import Emulators, Ports
from tests.conftest import ADMIN_KEY, gateway_env
from tests.integration.models_support import backend, setup_model
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import REPO, start_host, wait_until
from shared.usage.log import MemoryUsageSink, TableUsageSink, UsageLog, UsageRecord
from shared.usage.table_batch import TableBatchError, submit


def rec(i: int, **kw) -> UsageRecord:
    return UsageRecord(**{"request_id": f"r{i}", "project_id": "proj 'x' y", "operation": "chat", "status": 200,
                          "latency_ms": 1.5, "overhead_ms": 0.25, "attributes": {"total_tokens": 10}, "cost_usd": 1.0, **kw})


@pytest.fixture
async def table(emulators: Emulators):
    t = TableClient.from_connection_string(emulators.storage_connection_string, "t" + uuid.uuid4().hex[:10])
    await t.create_table()
    yield t
    await t.delete_table()
    await t.close()


async def test_batch_roundtrip_types_and_escaping(table):
    sink = TableUsageSink(table)
    await sink.write([rec(i, attempts=[{"backend": "a", "status": 500}]) for i in range(150)])  # 2 transactions
    rows = [e async for e in table.list_entities()]
    assert len(rows) == 150
    row = next(r for r in rows if r["request_id"] == "r7")
    assert row["cost_usd"] == 1.0 and isinstance(row["cost_usd"], float)  # stays Double, not Int32
    assert row["latency_ms"] == 1.5 and row["total_tokens"] == 10 and row["streamed"] is False
    assert row["at"].tzinfo is not None and row["attempts"] == '[{"backend":"a","status":500}]'
    assert row["PartitionKey"].startswith("proj 'x' y|")


async def test_big_ints_and_failures(table):
    await submit(table, [{"PartitionKey": "p", "RowKey": "big", "n": 2**40, "when": datetime.now(timezone.utc)}])
    row = await table.get_entity("p", "big")
    assert row["n"] == 2**40 if isinstance(row["n"], int) else row["n"].value == 2**40
    with pytest.raises(TableBatchError):  # Tables refuses a string property over 64 KiB: the batch fails loudly
        await submit(table, [{"PartitionKey": "p", "RowKey": "huge", "s": "x" * 70_000}])


async def test_log_buffer_batches_and_flushes_on_close():
    sink = MemoryUsageSink()
    log = UsageLog(sink, batch_size=5, flush_seconds=0.05, max_buffer=3)
    for i in range(5):
        log.record(rec(i))
    assert log.dropped == 2  # a full buffer never blocks the caller; the loss is counted
    await asyncio.sleep(0.2)
    assert [r.request_id for r in sink.records] == ["r0", "r1", "r2"]
    log.record(rec(9))
    await log.close()
    assert sink.records[-1].request_id == "r9" and log.dropped == 2


async def test_a_reused_request_id_keeps_every_row_of_every_project(table):
    # Same client-chosen x-request-id, same millisecond: the RowKey used to collide and fail the whole batch.
    at = datetime.now(timezone.utc)
    records = [rec(0, request_id="reused", at=at) for _ in range(3)]
    records += [UsageRecord(request_id="reused", project_id="other", operation="chat", status=200, latency_ms=1,
                            overhead_ms=0, at=at)]
    assert await TableUsageSink(table).write(records) == []
    rows = [e async for e in table.query_entities("request_id eq 'reused'")]
    assert len(rows) == 4 and {r["PartitionKey"].split("|")[0] for r in rows} == {"proj 'x' y", "other"}


async def test_a_30000_emoji_prompt_is_written_clipped_in_utf16(table):
    emoji = "😀" * 30_000  # what the proxy's 30,000-character clip let through: 60,000 UTF-16 code units
    records = [rec(0, prompt=emoji, completion=emoji), rec(1)]
    assert await TableUsageSink(table).write(records) == []
    row = await table.get_entity(*_keys(records[0]))
    assert row["prompt"].endswith("…[truncated]") and len(row["prompt"].encode("utf-16-le")) <= 65_536
    assert row["prompt"].startswith("😀😀") and await table.get_entity(*_keys(records[1]))


class _Unwritable(UsageRecord):
    """A row whose payload Tables refuses (a property past 64 KiB), standing for any content-refused row."""

    def to_entity(self) -> dict:
        entity = super().to_entity()
        entity["prompt"] = "x" * 70_000
        return entity


async def test_a_row_refused_by_real_tables_is_isolated_and_kept_without_payload(table):
    bad = _Unwritable(request_id="bad", project_id="proj 'x' y", operation="chat", status=200, latency_ms=1,
                      overhead_ms=0)
    records = [rec(i) for i in range(20)] + [bad]
    assert await TableUsageSink(table).write(records) == []  # Azurite's answer is classified as "content"
    rows = [e async for e in table.list_entities()]
    assert len(rows) == 21
    kept = next(r for r in rows if r["request_id"] == "bad")
    assert "prompt" not in kept and "400" in kept["log_error"]


def _keys(record: UsageRecord) -> tuple[str, str]:
    e = record.to_entity()
    return e["PartitionKey"], e["RowKey"]


# ---- through the running gateway: client input can no longer lose rows


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI("log") as f:
        yield f


def _rows(connection_string: str, request_id: str) -> list[dict]:
    from azure.data.tables import TableClient as SyncTableClient

    with SyncTableClient.from_connection_string(connection_string, "gatewayrequests") as t:
        return list(t.query_entities(f"request_id eq '{request_id}'"))


def test_gateway_logs_every_call_despite_reused_ids_and_emoji_prompts(gateway, admin, fake):
    pid, name, secret = setup_model(admin, [backend(fake, "log")])
    assert admin.patch(f"/manage/projects/{pid}", json={"log_payloads": True}).status_code == 200
    _, other_name, other_secret = setup_model(admin, [backend(fake, "log")])
    rid = "reused-" + uuid.uuid4().hex[:8]

    def call(secret: str, model: str, content: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        r = httpx.post(f"{gateway.url}/v1/chat/completions", content=orjson.dumps(body), timeout=30,
                       headers={"Authorization": f"Bearer {secret}", "content-type": "application/json",
                                "x-request-id": rid})
        assert r.status_code == 200, r.text

    call(secret, name, "hello")
    call(secret, name, "hello again")  # the same client-chosen id twice
    call(secret, name, "😀" * 30_000)  # 30,000 characters, 60,000 UTF-16 code units
    call(other_secret, other_name, "another project, same flush")
    rows = wait_until(lambda: (lambda r: r if len(r) == 4 else None)(_rows(gateway.env["AzureWebJobsStorage"], rid)),
                      timeout=15, message="4 request-log rows")
    assert len({r["RowKey"] for r in rows}) == 4
    emoji = next(r for r in rows if "😀" in r.get("prompt", ""))
    assert emoji["prompt"].endswith("…[truncated]") and len(emoji["prompt"].encode("utf-16-le")) <= 65_536


@pytest.fixture
def own_emulators(tmp_path):
    emu = Emulators(tmp_path / "emu", Ports.free())
    emu.start()
    yield emu
    emu.stop()


@pytest.mark.slow
def test_no_row_lost_across_a_storage_outage_under_load(own_emulators: Emulators, jwks, fake, tmp_path):
    host = start_host(root=REPO, app="function_app:app", log_dir=tmp_path, name="log-outage",
                      env=gateway_env(own_emulators, jwks))
    admin = httpx.Client(base_url=host.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    try:
        pid, name, secret = setup_model(admin, [backend(fake, "log")])
        headers = {"Authorization": f"Bearer {secret}"}
        body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}

        def calls_for(seconds: float) -> int:
            done, deadline = 0, time.monotonic() + seconds
            with httpx.Client(base_url=host.url, headers=headers, timeout=10) as c:
                while time.monotonic() < deadline:
                    assert c.post("/v1/chat/completions", json=body).status_code == 200
                    done += 1
            return done

        def sent_during(seconds: float) -> int:
            with ThreadPoolExecutor(4) as pool:
                return sum(pool.map(lambda _: calls_for(seconds), range(4)))

        # Azurite does not persist what it received just before a stop, so the outage starts before the first
        # call: every row of the test is written (and its table created) only after Storage is back.
        own_emulators.stop("azurite")
        sent = sent_during(8.0)  # the data plane keeps serving; its log rows wait in the buffer
        during = httpx.get(host.url + "/readyz").json()["checks"]
        assert during["storage"]["status"] == "unavailable" and during["usage_log"]["buffered"] > 0
        own_emulators.start("azurite")
        sent += sent_during(1.0)

        def all_rows():
            from azure.data.tables import TableClient as SyncTableClient

            with SyncTableClient.from_connection_string(own_emulators.storage_connection_string,
                                                        "gatewayrequests") as t:
                try:
                    n = sum(1 for _ in t.query_entities(f"project_id eq '{pid}'", select=["RowKey"]))
                except ResourceNotFoundError:  # created by the first write after the outage
                    return None
            return n if n >= sent else None

        assert wait_until(all_rows, timeout=20, interval=0.5, message=f"{sent} request-log rows") == sent
        stats = httpx.get(host.url + "/readyz").json()["checks"]["usage_log"]
        assert stats["dropped"] == 0 and stats["rejected"] == 0 and stats["write_failures"] > 0
        assert stats["buffered"] == 0 and sent > 100
    finally:
        admin.close()
        host.stop()
