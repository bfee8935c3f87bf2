"""Writing request-log rows to Azure Tables so that no row can take another one down.

Rows are grouped by partition (one transaction per partition, ≤ 100 entities and ≤ ~3 MiB of the 4 MiB a
transaction may carry). When Tables refuses a transaction *for its content* (400/413: a bad or oversized
entity), the transaction is split in halves until the culprit stands alone; the others are written. A culprit
is retried once without its payload (prompt, completion, attempts) so its accounting survives; if even that is
refused it is returned as rejected, for the caller to count and log. Any other failure (network, 5xx,
throttling, a missing table) says nothing about the rows: it propagates, and the caller retries the same rows
later. Writes are upserts keyed by a gateway-generated RowKey, so a retried row is never duplicated.
"""
from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError
from azure.data.tables.aio import TableClient

from .entity import without_payload
from ..slices import Slicer
from .table_batch import Encoded, TableBatchError, encode, submit

if TYPE_CHECKING:
    from .log import UsageRecord

log = logging.getLogger("gateway.usage")

MAX_BATCH_ENTITIES = 100
MAX_BATCH_BYTES = 3 * 1024 * 1024  # of entity bodies; the 4 MiB request limit also covers the multipart framing

Submit = Callable[[TableClient, list[Encoded]], Awaitable[None]]
Rejected = list[tuple["UsageRecord", str]]


def chunks(items: list[tuple["UsageRecord", Encoded]]) -> list[list[tuple["UsageRecord", Encoded]]]:
    out: list[list[tuple[UsageRecord, Encoded]]] = []
    current: list[tuple[UsageRecord, Encoded]] = []
    size = 0
    for item in items:
        n = len(item[1][2])
        if current and (len(current) >= MAX_BATCH_ENTITIES or size + n > MAX_BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += n
    if current:
        out.append(current)
    return out


class TableUsageSink:
    def __init__(self, table: TableClient, *, submit: Submit = submit,
                 slicer: Callable[[], Slicer] = Slicer) -> None:
        self._table = table
        self._submit = submit
        self._slicer = slicer  # a fresh budget per write: entity building hands the loop back every ~1 ms
        self._created = False

    async def write(self, records: list["UsageRecord"]) -> Rejected:
        """Write every record it can; → the records Tables will never accept, with the reason. Raises when the
        store (not the content) failed: nothing is known about the rows then, and retrying them is safe."""
        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                await self._table.create_table()
            self._created = True
        by_partition: dict[str, list[tuple[UsageRecord, Encoded]]] = defaultdict(list)
        slicer = self._slicer()
        for r in records:  # ~20–60 µs of CPU per row: in slices, never one long stretch on the loop
            e = r.to_entity()
            by_partition[e["PartitionKey"]].append((r, encode(e)))
            await slicer.tick()
        rejected: Rejected = []
        for items in by_partition.values():
            for chunk in chunks(items):
                rejected += await self._write_isolating(chunk)
        return rejected

    async def _send(self, chunk: list[tuple["UsageRecord", Encoded]]) -> None:
        try:
            await self._submit(self._table, [enc for _, enc in chunk])
        except TableBatchError as exc:
            if exc.status == 404:
                self._created = False  # the table was deleted under us: recreate it on the next attempt
            raise

    async def _write_isolating(self, chunk: list[tuple["UsageRecord", Encoded]]) -> Rejected:
        try:
            await self._send(chunk)
            return []
        except TableBatchError as exc:
            if not exc.permanent:
                raise
            reason = str(exc)
        if len(chunk) > 1:
            half = len(chunk) // 2
            return await self._write_isolating(chunk[:half]) + await self._write_isolating(chunk[half:])
        record = chunk[0][0]
        slim = encode(without_payload(record.to_entity(), reason))
        log.warning("request-log row %s (request %s) refused by Tables (%s); written without its payload",
                    slim[1], record.request_id, reason)
        try:
            await self._send([(record, slim)])
            return []
        except TableBatchError as exc:
            if not exc.permanent:
                raise
            return [(record, str(exc))]
