"""Per-call usage and request logs, written asynchronously in batches so a slow log store never slows a call.

`record()` only appends to a bounded in-memory queue; a background task flushes every `flush_seconds` or
`batch_size` records to Azure Tables (one transaction per partition, ≤ 100 entities). When the queue is full
the record is dropped and counted (`dropped`) rather than blocking the request.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient
import orjson
from pydantic import BaseModel, Field

from ..domain.base import utcnow
from .table_batch import submit

log = logging.getLogger("gateway.usage")


class UsageRecord(BaseModel):
    request_id: str
    project_id: str
    key_id: str | None = None
    key_prefix: str | None = None
    operation: str
    model: str | None = None
    backend: str | None = None
    status: int
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float
    overhead_ms: float
    retries: int = 0
    failovers: int = 0
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    streamed: bool = False
    usage_estimated: bool = False  # the upstream sent no usage: counted from our estimate
    at: datetime = Field(default_factory=utcnow)
    prompt: str | None = None  # only when the project opts in
    completion: str | None = None

    def to_entity(self) -> dict[str, Any]:
        # Plain attribute copy (no model_dump): this runs for every call, and the fields are already validated.
        entity = {k: v for k, v in self.__dict__.items() if v is not None}
        entity["attempts"] = orjson.dumps(self.attempts).decode()
        ms = int(self.at.timestamp() * 1000)
        # newest first inside a day's partition
        entity["PartitionKey"] = f"{self.project_id}|{self.at:%Y%m%d}"
        entity["RowKey"] = f"{10**13 - ms:013d}-{self.request_id}"
        return entity


class UsageSink(Protocol):
    async def write(self, records: list[UsageRecord]) -> None: ...


class MemoryUsageSink:
    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    async def write(self, records: list[UsageRecord]) -> None:
        self.records.extend(records)


class TableUsageSink:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._created = False

    async def write(self, records: list[UsageRecord]) -> None:
        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()
            self._created = True
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            e = r.to_entity()
            by_partition[e["PartitionKey"]].append(e)
        for entities in by_partition.values():
            for i in range(0, len(entities), 100):
                await submit(self._table, entities[i:i + 100])


class UsageLog:
    # Small batches, flushed often: each write is a slice of CPU on the event loop, and many short slices delay
    # the calls in flight less than one long one (p99).
    def __init__(self, sink: UsageSink, *, batch_size: int = 25, flush_seconds: float = 1.0,
                 max_queue: int = 10_000) -> None:
        self._sink = sink
        self._batch = batch_size
        self._interval = flush_seconds
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.failed_batches = 0

    def record(self, rec: UsageRecord) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            self._queue.put_nowait(rec)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self._interval
            while len(batch) < self._batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            await self._write(batch)

    async def _write(self, batch: list[UsageRecord]) -> None:
        for attempt in range(3):
            try:
                await self._sink.write(batch)
                return
            except Exception as exc:  # noqa: BLE001 - logging must never take the gateway down
                log.warning("usage log write failed (%s), attempt %d", type(exc).__name__, attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))
        self.failed_batches += 1

    async def flush(self) -> None:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        if batch:
            await self._write(batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.flush()
