"""The request-log writer and buffer in process, against a fake table that enforces Azure Tables' documented
limits: a bad row is isolated from its batch, an outage loses nothing, a full buffer is counted — all with an
injected clock, no real waiting."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from azure.core.exceptions import ServiceRequestError

from shared.usage.entity import MARKER, clip_utf16, entity_bytes, utf16_units
from shared.usage.log import UsageLog, UsageRecord
from shared.usage.table_batch import Encoded, TableBatchError
from shared.usage.table_sink import TableUsageSink

AT = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    """Monotonic time that only the test moves; sleepers wake when it passes their deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._moved = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        until = self.now + seconds
        while self.now < until:
            self._moved.clear()
            await self._moved.wait()

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        for _ in range(5):
            await asyncio.sleep(0)


class FakeTable:
    """Azure Tables' rules for an entity-group transaction, applied to an in-memory table."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.down: tuple[float, float] | None = None  # (from, until) on `clock`
        self.clock = clock
        self.transactions = 0
        self.refuse_prompt: str | None = None  # content Tables refuses, e.g. an invalid property value

    async def create_table(self) -> None:
        self._available()

    def _available(self) -> None:
        if self.down and self.clock and self.down[0] <= self.clock.now < self.down[1]:
            raise ServiceRequestError("connection refused")

    async def submit(self, _client: Any, entities: list[Encoded]) -> None:
        self._available()
        self.transactions += 1
        if len(entities) > 100 or len({pk for pk, _, _ in entities}) != 1:
            raise TableBatchError("batch rejected: HTTP/1.1 400 Bad Request", 400)
        if sum(len(body) for *_, body in entities) > 4 * 1024 * 1024:
            raise TableBatchError("batch failed: HTTP 413", 413)
        if len({rk for _, rk, _ in entities}) != len(entities):
            raise TableBatchError("batch rejected: HTTP/1.1 400 Bad Request (InvalidDuplicateRow)", 400)
        decoded = []
        for pk, rk, body in entities:
            e = orjson.loads(body)
            strings = [v for v in e.values() if isinstance(v, str)]
            if any(c in pk for c in "/\\#?") or any(utf16_units(v) > 32_768 for v in strings) or \
                    entity_bytes(e) > 1024 * 1024 or (self.refuse_prompt and self.refuse_prompt in e.get("prompt", "")):
                raise TableBatchError("batch rejected: HTTP/1.1 400 Bad Request", 400)
            decoded.append(((pk, rk), e))
        self.rows.update(decoded)  # all or nothing, like a changeset

    def by_request(self, request_id: str) -> list[dict[str, Any]]:
        return [e for e in self.rows.values() if e["request_id"] == request_id]


def rec(i: int, project: str = "p1", **kw: Any) -> UsageRecord:
    return UsageRecord(**{"request_id": f"r{i}", "project_id": project, "operation": "chat", "status": 200,
                          "latency_ms": 1.0, "overhead_ms": 0.1, "at": AT, **kw})


def sink_of(table: FakeTable) -> TableUsageSink:
    return TableUsageSink(table, submit=table.submit)  # type: ignore[arg-type]


# ---- rows cannot collide or overflow, whatever the client sends


async def test_a_reused_request_id_never_collides():
    table = FakeTable()
    rejected = await sink_of(table).write([rec(0, request_id="same") for _ in range(10)])
    assert rejected == [] and len(table.by_request("same")) == 10


def test_hostile_request_ids_are_bounded_to_the_allow_list():
    r = rec(0, request_id="a/b#c?d\\e'" + "x" * 500)
    assert r.request_id.startswith("a_b_c_d_e_") and len(r.request_id) == 128
    assert "a/b" not in r.to_entity()["RowKey"]


def test_clipping_counts_utf16_code_units_and_never_splits_a_pair():
    emoji = "😀" * 30_000  # 30,000 characters, 60,000 UTF-16 code units
    clipped = clip_utf16(emoji)
    assert utf16_units(clipped) <= 32_000 and clipped.endswith(MARKER)
    assert clipped[:-len(MARKER)] == "😀" * ((32_000 - len(MARKER)) // 2)
    assert clip_utf16("a" * 32_000) == "a" * 32_000  # at the limit: untouched


async def test_an_emoji_prompt_is_written_clipped_with_its_batch():
    table = FakeTable()
    records = [rec(0, prompt="😀" * 30_000, completion="😀" * 30_000), *(rec(i) for i in range(1, 25))]
    assert await sink_of(table).write(records) == []
    row = table.by_request("r0")[0]
    assert utf16_units(row["prompt"]) <= 32_768 and row["prompt"].endswith(MARKER) and len(table.rows) == 25


async def test_big_payloads_are_split_under_the_transaction_size_limit():
    table = FakeTable()
    records = [rec(i, prompt="é" * 30_000, completion="é" * 30_000) for i in range(100)]  # ~12 MB of UTF-8
    assert await sink_of(table).write(records) == []
    assert len(table.rows) == 100 and table.transactions > 1


# ---- one bad row is isolated from its batch


async def test_a_refused_row_is_isolated_and_kept_without_its_payload():
    table = FakeTable()
    table.refuse_prompt = "POISON"
    records = [rec(i, project=f"p{i % 2}") for i in range(30)]
    records[7] = rec(7, project="p1", prompt="…POISON…")
    rejected = await sink_of(table).write(records)
    assert rejected == [] and len(table.rows) == 30  # every other row of both projects is written
    poisoned = table.by_request("r7")[0]
    assert "prompt" not in poisoned and "400" in poisoned["log_error"]


async def test_a_row_that_can_never_be_written_is_counted_and_logged(caplog):
    table = FakeTable()
    log = UsageLog(sink_of(table), batch_size=10, flush_seconds=0.001)
    records = [rec(i) for i in range(9)] + [rec(99, project="bad#project")]  # '#' is refused in keys
    for r in records:
        log.record(r)
    with caplog.at_level(logging.ERROR, "gateway.usage"):
        await log.flush()
    assert len(table.rows) == 9 and log.rejected == 1 and log.written == 9
    assert "r99" in caplog.text and "bad#project" in caplog.text
    await log.close()


async def test_a_store_failure_is_not_mistaken_for_bad_content():
    class Throttled(FakeTable):
        async def submit(self, _client: Any, entities: list[Encoded]) -> None:
            self.transactions += 1
            raise TableBatchError("batch failed: HTTP 503", 503)

    table = Throttled()
    with pytest.raises(TableBatchError):
        await sink_of(table).write([rec(i) for i in range(10)])
    assert table.transactions == 1  # not bisected, nothing declared rejected: the caller retries the rows


# ---- outages: buffered, retried with backoff, nothing lost; the bound is counted


async def test_a_60s_storage_outage_at_100_calls_per_second_loses_no_row():
    clock = Clock()
    table = FakeTable(clock)
    table.down = (5.0, 65.0)
    log = UsageLog(sink_of(table), flush_seconds=0.001, sleep=clock.sleep, clock=clock, max_buffer=10_000)
    for second in range(75):
        for i in range(100):
            log.record(rec(second * 100 + i))
        await clock.advance(1.0)
        if second == 40:
            assert log.stats()["buffered"] >= 3_500 and log.failing_seconds() > 30
    for _ in range(200):  # the backlog drains in real (fake-table) time
        if not log.stats()["buffered"]:
            break
        await clock.advance(1.0)
    assert len(table.rows) == 7_500 and log.written == 7_500
    assert log.dropped == 0 and log.rejected == 0 and log.write_failures > 5
    assert max(clock.slept) <= 5.0 * 1.2  # capped backoff: recovery is noticed within seconds
    await log.close()


async def test_a_full_buffer_drops_new_rows_counted_logged_and_shown(caplog):
    clock = Clock()
    table = FakeTable(clock)
    table.down = (0.0, 30.0)
    log = UsageLog(sink_of(table), flush_seconds=0.001, sleep=clock.sleep, clock=clock, max_buffer=100)
    with caplog.at_level(logging.ERROR, "gateway.usage"):
        for i in range(150):
            log.record(rec(i))
            await asyncio.sleep(0)
    assert log.dropped == 50 and log.stats()["dropped"] == 50 and "buffer full" in caplog.text
    await clock.advance(31.0)
    for _ in range(20):
        await clock.advance(5.0)
    assert len(table.rows) == 100 and {f"r{i}" for i in range(100)} == {e["request_id"] for e in table.rows.values()}
    await log.close()


async def test_rows_still_unwritten_at_shutdown_are_counted_as_lost(caplog):
    table = FakeTable(Clock())
    table.down = (0.0, 1e9)
    log = UsageLog(sink_of(table), flush_seconds=0.001, close_timeout=0.05)
    for i in range(5):
        log.record(rec(i))
    with caplog.at_level(logging.ERROR, "gateway.usage"):
        await log.close()
    assert log.dropped == 5 and "5 rows could not be written before shutdown" in caplog.text


def test_an_entity_past_the_size_budget_sheds_payload_until_it_fits(monkeypatch):
    from shared.usage import entity as entity_module

    monkeypatch.setattr(entity_module, "MAX_ENTITY_BYTES", 50_000)
    e = rec(0, prompt="p" * 30_000, completion="c" * 30_000).to_entity()
    assert entity_bytes(e) <= 50_000 and e["prompt"].endswith(MARKER) and e["completion"].endswith(MARKER)
    assert e["request_id"] == "r0" and e["status"] == 200  # the accounting is never shed
