"""The request log's writer against real Azurite: types survive, keys are escaped, failures are reported."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from azure.data.tables.aio import TableClient

from dev.emulators import Emulators
from shared.usage.log import MemoryUsageSink, TableUsageSink, UsageLog, UsageRecord
from shared.usage.table_batch import TableBatchError, submit


def rec(i: int, **kw) -> UsageRecord:
    return UsageRecord(**{"request_id": f"r{i}", "project_id": "proj 'x' y", "operation": "chat", "status": 200,
                          "latency_ms": 1.5, "overhead_ms": 0.25, "total_tokens": 10, "cost_usd": 1.0, **kw})


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
