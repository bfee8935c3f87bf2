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
    return UsageRecord(request_id=f"r{i}", project_id="proj 'x' y", operation="chat", status=200, latency_ms=1.5,
                       overhead_ms=0.25, total_tokens=10, cost_usd=1.0, **kw)


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


async def test_log_queue_batches_drops_when_full_and_flushes_on_close():
    sink = MemoryUsageSink()
    log = UsageLog(sink, batch_size=5, flush_seconds=0.05, max_queue=3)
    for i in range(5):
        log.record(rec(i))
    assert log.dropped == 2  # a full queue never blocks the caller
    await asyncio.sleep(0.2)
    assert [r.request_id for r in sink.records] == ["r0", "r1", "r2"]
    log.record(rec(9))
    await log.close()
    assert sink.records[-1].request_id == "r9"


async def test_failed_writes_are_retried_then_counted():
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        async def write(self, records):
            self.calls += 1
            raise OSError("storage down")

    sink = Flaky()
    log = UsageLog(sink, batch_size=1, flush_seconds=0.01)
    log.record(rec(1))
    for _ in range(60):
        await asyncio.sleep(0.1)
        if log.failed_batches:
            break
    assert sink.calls == 3 and log.failed_batches == 1
    await log.close()
