"""Every document of a kind in a partition (or all partitions), page by page: the monitoring jobs' registry reads
(projects, rules, keys, key requests — admin-sized sets, not call-sized)."""
from __future__ import annotations

from typing import Any

from ..storage.repository import Repository


async def list_all(repo: Repository[Any], partition: str | None) -> list[Any]:
    items, cursor = [], None
    while True:
        page = await repo.list(partition, limit=200, cursor=cursor)
        items += page.items
        cursor = page.cursor
        if not cursor:
            return items
