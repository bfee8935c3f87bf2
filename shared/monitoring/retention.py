"""Request-log retention: rows older than the retention period are deleted in bounded batches by a timer.

Each round reads at most `round_rows` keys of expired rows, deletes them in per-partition transactions of at most
100, and queries again (deleted rows no longer match, so no continuation state is kept). A run stops after
`max_rows`; the next run continues. Running twice, or two instances at once, is harmless: a row already gone is
simply not there any more.
"""
from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

log = logging.getLogger("gateway.monitoring")


@dataclass
class RetentionResult:
    cutoff: datetime
    deleted: int = 0
    complete: bool = True  # False: stopped at max_rows, the next run continues


async def _expired_keys(table: Any, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    async for e in table.query_entities("at lt @cutoff", parameters={"cutoff": cutoff},
                                        select=["PartitionKey", "RowKey"], results_per_page=min(limit, 1000)):
        keys.append((e["PartitionKey"], e["RowKey"]))
        if len(keys) >= limit:
            break
    return keys


async def _delete(table: Any, keys: list[tuple[str, str]]) -> None:
    by_partition: dict[str, list[str]] = defaultdict(list)
    for pk, rk in keys:
        by_partition[pk].append(rk)
    for pk, rks in by_partition.items():
        for i in range(0, len(rks), 100):
            chunk = rks[i:i + 100]
            try:
                await table.submit_transaction([("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in chunk])
            except (HttpResponseError, ValueError) as exc:
                # One row deleted meanwhile (another run) fails the whole transaction: delete one by one instead.
                log.info("retention: batch delete in %s fell back to single deletes (%s)", pk, type(exc).__name__)
                for rk in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(partition_key=pk, row_key=rk)


async def purge_expired(table: Any, now: datetime, retention_days: int, *, round_rows: int = 1000,
                        max_rows: int = 50_000) -> RetentionResult:
    result = RetentionResult(cutoff=now - timedelta(days=retention_days))
    while result.deleted < max_rows:
        keys = await _expired_keys(table, result.cutoff, min(round_rows, max_rows - result.deleted))
        if not keys:
            return result
        await _delete(table, keys)
        result.deleted += len(keys)
    result.complete = not await _expired_keys(table, result.cutoff, 1)
    return result
