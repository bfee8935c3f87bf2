"""The request log's background work shares the loop with requests: entity building is sliced (~1 ms of work,
then the loop is handed back), the background task writes full batches in record order, a partial batch waits
for its window, close() still writes everything, and the lean Tables pipeline keeps the credential."""
from __future__ import annotations

import asyncio
import itertools
from typing import Any

from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

from shared.usage.log import UsageLog, UsageRecord
from shared.slices import Slicer
from shared.usage.table_batch import Encoded, lean_policies
from shared.usage.table_sink import TableUsageSink
from tests.unit.test_usage_writer import FakeTable, rec


async def test_a_slicer_hands_the_loop_back_only_once_its_budget_is_spent():
    units = [0]
    pauses: list[int] = []

    async def pause() -> None:
        pauses.append(units[0])

    slicer = Slicer(0.001, clock=lambda: units[0] * 0.0004, pause=pause)
    for _ in range(10):
        units[0] += 1  # one unit of work: 0.4 ms
        await slicer.tick()
    # 0.4 ms units against a 1 ms budget: a hand-back after every third unit, never later
    assert pauses == [3, 6, 9] and slicer.pauses == 3


async def test_entity_building_yields_to_requests_in_slices_and_keeps_order():
    events: list[str] = []
    ticks = itertools.count()

    def clock() -> float:  # every read stands for one row's work of 0.4 ms
        events.append("log")
        return next(ticks) * 0.0004

    table = FakeTable()
    sink = TableUsageSink(table, submit=table.submit,  # type: ignore[arg-type]
                          slicer=lambda: Slicer(0.001, clock=clock))
    done = False

    async def request_in_flight() -> None:
        while not done:
            events.append("req")
            await asyncio.sleep(0)

    other = asyncio.create_task(request_in_flight())
    await asyncio.sleep(0)
    records = [rec(i) for i in range(30)]
    assert await sink.write(records) == []
    done = True
    await other
    runs = [len(list(g)) for k, g in itertools.groupby(events) if k == "log"]
    assert len(runs) >= 9 and max(runs) <= 4  # never more than ~1 ms of rows before the request runs again
    written = sorted(table.rows.values(), key=lambda e: e["RowKey"], reverse=True)  # RowKey: newest first
    assert {e["request_id"] for e in written} == {f"r{i}" for i in range(30)}


class Gate:
    """A sink whose writes wait until the test opens them, recording each batch in order."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def write(self, records: list[UsageRecord]) -> list[Any]:
        await self.open.wait()
        self.batches.append([r.request_id for r in records])
        return []


async def until(condition, seconds: float = 10.0) -> None:  # noqa: ANN001
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_the_background_task_writes_full_batches_in_order_and_a_partial_one_after_its_window():
    sink = Gate()
    log = UsageLog(sink, batch_size=10, flush_seconds=1.0)  # a window far longer than the checks below
    sink.open.clear()  # the store is slow: rows keep arriving while the first write is in flight
    for i in range(10):
        log.record(rec(i))
    await until(lambda: log.stats()["buffered"] == 10 and log._lock.locked())
    for i in range(10, 13):
        log.record(rec(i))
    sink.open.set()
    await until(lambda: len(sink.batches) == 1)
    await asyncio.sleep(0.02)
    assert len(sink.batches) == 1  # the 3 late rows are not trickled out as a transaction of their own
    for i in range(13, 20):
        log.record(rec(i))
    await until(lambda: len(sink.batches) == 2)
    for i in range(20, 22):
        log.record(rec(i))
    await until(lambda: len(sink.batches) == 3)  # a partial batch goes out once its window has passed
    assert sink.batches == [[f"r{i}" for i in range(10)], [f"r{i}" for i in range(10, 20)], ["r20", "r21"]]
    await log.close()


async def test_a_row_inside_a_gathering_window_does_not_wake_the_drainer_and_a_dead_drainer_is_replaced():
    sink = Gate()
    log = UsageLog(sink, batch_size=5, flush_seconds=3600)
    log.record(rec(0))  # a window starts: the drainer wakes once and gathers
    await until(lambda: log._task is not None and not log._wake.is_set())
    for i in range(1, 4):
        log.record(rec(i))
        assert not log._wake.is_set()  # no news: the batch is not full, the window runs on (no step, no timer)
    log.record(rec(4))  # full: written now, long before the window ends
    await until(lambda: len(sink.batches) == 1)
    assert sink.batches == [[f"r{i}" for i in range(5)]]
    await log.close()

    quick = UsageLog(sink, batch_size=5, flush_seconds=0.05)
    quick.record(rec(5))
    quick.record(rec(6))
    await until(lambda: quick._task is not None and not quick._wake.is_set())
    quick._task.cancel()  # the drainer ended mid-window with rows buffered (its wake already consumed)
    await asyncio.sleep(0)
    quick.record(rec(7))  # neither a window's first row nor a full batch: the new drainer is woken all the same
    await until(lambda: len(sink.batches) == 2)
    assert sink.batches[1] == ["r5", "r6", "r7"]
    await quick.close()


async def test_close_still_writes_a_partial_batch_that_has_not_reached_its_window():
    sink = Gate()
    log = UsageLog(sink, batch_size=100, flush_seconds=3600)
    for i in range(3):
        log.record(rec(i))
    await asyncio.sleep(0)
    await log.close()
    assert sink.batches == [["r0", "r1", "r2"]] and log.written == 3 and log.dropped == 0


class FakeTokenCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", 2**31)

    async def close(self) -> None:
        pass


def test_the_lean_batch_pipeline_keeps_headers_and_the_credential_and_drops_the_rest():
    url = "https://acct.table.core.windows.net"
    for credential, auth in ((FakeTokenCredential(), "AsyncBearerTokenChallengePolicy"),  # managed identity
                             (AzureNamedKeyCredential("acct", "a2V5"), "SharedKeyCredentialPolicy")):
        client = TableClient(url, "t", credential=credential)
        names = [type(p).__name__ for p in lean_policies(client)]
        assert names[:2] == ["StorageHeadersPolicy", "UserAgentPolicy"] and len(names) == 3
        assert names[2] == auth
        assert not {"AsyncTablesRetryPolicy", "HttpLoggingPolicy", "DistributedTracingPolicy"} & set(names)


async def test_rows_left_behind_by_a_full_batch_go_out_after_their_window_without_new_traffic():
    sink = Gate()
    log = UsageLog(sink, batch_size=10, flush_seconds=0.3)
    for i in range(13):  # all buffered before the background task first runs: no later record() wakes it
        log.record(rec(i))
    await until(lambda: len(sink.batches) == 2)
    assert sink.batches == [[f"r{i}" for i in range(10)], ["r10", "r11", "r12"]]
    await log.close()
