"""In-memory DocumentStore with the same semantics as Cosmos (ETags, conflicts, paging). For unit tests."""
from __future__ import annotations

import copy
import uuid
from typing import Any

from ..errors import AlreadyExists, DependencyUnavailable, NotFound, PreconditionFailed
from .documents import DocPage, Query, decode_cursor, encode_cursor, ensure_storable, kinds_of


class MemoryDocumentStore:
    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self.available = True  # tests flip this to simulate an outage

    def _check(self) -> None:
        if not self.available:
            raise DependencyUnavailable("The registry is unreachable.", details={"dependency": "cosmos"})

    def _stamp(self, doc: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(doc)
        stored["_etag"] = f'"{uuid.uuid4()}"'
        self._docs[(doc["pk"], doc["id"])] = stored
        return copy.deepcopy(stored)

    async def read(self, partition: str, id: str) -> dict[str, Any] | None:
        self._check()
        doc = self._docs.get((partition, id))
        return copy.deepcopy(doc) if doc else None

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        self._check()
        ensure_storable(doc)
        if (doc["pk"], doc["id"]) in self._docs:
            raise AlreadyExists(f"'{doc['id']}' already exists.")
        return self._stamp(doc)

    async def replace(self, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        self._check()
        ensure_storable(doc)
        current = self._docs.get((doc["pk"], doc["id"]))
        if current is None:
            raise NotFound(f"'{doc['id']}' does not exist.")
        if current["_etag"] != etag:
            raise PreconditionFailed("The resource was changed since it was read (ETag mismatch).")
        return self._stamp(doc)

    async def delete(self, partition: str, id: str, etag: str | None = None) -> None:
        self._check()
        current = self._docs.get((partition, id))
        if current is None:
            raise NotFound(f"'{id}' does not exist.")
        if etag is not None and current["_etag"] != etag:
            raise PreconditionFailed("The resource was changed since it was read (ETag mismatch).")
        del self._docs[(partition, id)]

    async def query(self, q: Query, limit: int, cursor: str | None = None) -> DocPage:
        self._check()
        kinds = kinds_of(q)
        matches = sorted(
            (d for d in self._docs.values()
             if d.get("kind") in kinds
             and (q.partition is None or d["pk"] == q.partition)
             and all(d.get(k) == v for k, v in q.equals.items())
             and all(v in (d.get(k) or []) for k, v in q.contains.items())),
            key=lambda d: (d["pk"], d["id"]),
        )
        raw = decode_cursor(cursor) if cursor else "0"
        if not raw.isdigit():
            decode_cursor("!")  # raises the one invalid-cursor error
        start = int(raw)
        items = matches[start:start + limit]
        more = start + limit < len(matches)
        return DocPage([copy.deepcopy(d) for d in items], encode_cursor(str(start + limit)) if more else None)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        pass
