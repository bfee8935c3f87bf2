"""Typed repository over a DocumentStore: pydantic entities in, pydantic entities out."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..domain.base import Entity, utcnow
from ..errors import ConcurrentUpdate, NotFound, PreconditionFailed
from .documents import DocumentStore, Query

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True)
class Page(Generic[E]):
    items: list[E]
    cursor: str | None


class Repository(Generic[E]):
    def __init__(self, store: DocumentStore, entity: type[E]) -> None:
        self._store = store
        self._entity = entity
        self.kind = entity.kind

    def _load(self, doc: dict[str, Any]) -> E:
        return self._entity.from_document(doc)  # type: ignore[return-value]

    async def find(self, partition: str, id: str) -> E | None:
        doc = await self._store.read(partition, id)
        return self._load(doc) if doc and doc.get("kind") == self.kind else None

    async def get(self, partition: str, id: str) -> E:
        found = await self.find(partition, id)
        if found is None:
            raise NotFound(f"{self.kind.replace('_', ' ')} '{id}' does not exist.")
        return found

    async def create(self, entity: E) -> E:
        return self._load(await self._store.create(entity.to_document()))

    async def replace(self, entity: E) -> E:
        """Conditional on `entity.etag` (the version that was read); never a blind overwrite."""
        if entity.etag is None:
            raise ValueError("replace needs the ETag of the version that was read")
        entity.updated_at = utcnow()
        return self._load(await self._store.replace(entity.to_document(), entity.etag))

    async def update(self, partition: str, id: str, change: Callable[[E], Awaitable[None] | None],
                     if_match: str | None = None) -> E:
        """Read-modify-write. With the client's If-Match: a stale ETag is 412. Without it: a write that loses a
        race with another writer is 409 concurrent_update (the client re-reads), never a silent overwrite."""
        current = await self.get(partition, id)
        if if_match is not None and if_match != current.etag:
            raise PreconditionFailed("If-Match does not match the current ETag of the resource.",
                                     details={"etag": current.etag})
        result = change(current)
        if result is not None:
            await result
        try:
            return await self.replace(current)
        except PreconditionFailed:
            if if_match is not None:
                raise
            raise ConcurrentUpdate("The resource was changed concurrently; read it again and retry.") from None

    async def delete(self, partition: str, id: str, if_match: str | None = None) -> None:
        await self._store.delete(partition, id, if_match)

    async def list(self, partition: str | None, *, limit: int = 50, cursor: str | None = None,
                   contains: dict[str, Any] | None = None, **equals: Any) -> Page[E]:
        page = await self._store.query(Query(self.kind, partition, equals, contains or {}), limit, cursor)
        return Page([self._load(d) for d in page.items], page.cursor)
