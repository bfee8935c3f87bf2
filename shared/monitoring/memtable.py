"""An in-memory stand-in for the subset of `azure.data.tables.aio.TableClient` the monitoring jobs use.

It evaluates the same parameterised OData filters the jobs send to Azure Tables (`Name op @param` joined by
`and`, the only shape they build), so unit tests run the real query code; tests/integration runs it on Azurite.
Entities come back in Tables' order: PartitionKey, then RowKey, both ascending.
"""
from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator
from typing import Any

_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+@(\w+)\s*$")
_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b}


def compile_filter(expr: str, params: dict[str, Any]) -> Any:
    clauses = []
    for part in expr.split(" and "):
        m = _CLAUSE.match(part)
        if m is None:
            raise ValueError(f"unsupported filter clause {part!r}")
        name, op, param = m.groups()
        clauses.append((name, _OPS[op], params[param], op))

    def matches(entity: dict[str, Any]) -> bool:
        for name, fn, value, op in clauses:
            if name not in entity:  # Tables: a missing property satisfies no comparison
                return False
            try:
                if not fn(entity[name], value):
                    return False
            except TypeError:  # a property of another type: Tables compares only like types
                return False
        return True

    return matches


class MemoryTable:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.queries = 0  # how many queries were sent (reads must stay cheap: tests count them)

    async def create_table(self) -> None:
        return None

    async def upsert_entity(self, entity: dict[str, Any], mode: Any = None) -> dict[str, Any]:
        self.rows[(entity["PartitionKey"], entity["RowKey"])] = copy.deepcopy(dict(entity))
        return {}

    async def delete_entity(self, partition_key: str, row_key: str, **_: Any) -> None:
        self.rows.pop((partition_key, row_key), None)  # Tables' SDK also ignores a missing entity

    async def get_entity(self, partition_key: str, row_key: str, **_: Any) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError

        row = self.rows.get((partition_key, row_key))
        if row is None:
            raise ResourceNotFoundError("not found")
        return copy.deepcopy(row)

    async def submit_transaction(self, operations: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        if len({op[1]["PartitionKey"] for op in operations}) > 1 or len(operations) > 100:
            raise ValueError("a transaction holds at most 100 entities of one partition")
        for op in operations:
            kind, entity = str(getattr(op[0], "value", op[0])), op[1]
            if kind == "delete":
                await self.delete_entity(entity["PartitionKey"], entity["RowKey"])
            else:
                await self.upsert_entity(entity)
        return []

    def query_entities(self, query_filter: str, *, parameters: dict[str, Any] | None = None,
                       select: list[str] | None = None, results_per_page: int | None = None,
                       **_: Any) -> AsyncIterator[dict[str, Any]]:
        self.queries += 1
        matches = compile_filter(query_filter, parameters or {})
        return self._iterate(matches, select)

    def list_entities(self, **_: Any) -> AsyncIterator[dict[str, Any]]:
        self.queries += 1
        return self._iterate(lambda e: True, None)

    async def _iterate(self, matches: Any, select: list[str] | None) -> AsyncIterator[dict[str, Any]]:
        for key in sorted(self.rows):
            row = self.rows.get(key)
            if row is not None and matches(row):
                yield copy.deepcopy({k: v for k, v in row.items() if k in select} if select else row)

    async def close(self) -> None:
        return None
