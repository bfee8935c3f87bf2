"""Typed repository over a DocumentStore: pydantic entities in, pydantic entities out.

Every document of every kind shares one container and its project's partition, so the repository checks the kind
on every operation: a read of another kind's id is "not found", and a delete only removes the version whose kind it
checked (conditional on that version's ETag). A document that no longer validates is never served: a point read
raises InvalidStoredDocument (409), a list skips it, logs it and reports it in `Page.invalid`.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from ..domain.base import Entity, InvalidDocument, utcnow
from ..slices import Slicer
from ..errors import AlreadyExists, ConcurrentUpdate, InvalidStoredDocument, NotFound, PreconditionFailed
from .documents import DocumentStore, Query

E = TypeVar("E", bound=Entity)
log = logging.getLogger("gateway.registry")


@dataclass(frozen=True)
class Page(Generic[E]):
    items: list[E]
    cursor: str | None
    invalid: list[InvalidDocument] = field(default_factory=list)  # skipped: stored but no longer valid


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "document", "message": e["msg"]}
            for e in exc.errors(include_url=False)]


class Repository(Generic[E]):
    def __init__(self, store: DocumentStore, entity: type[E], *, slicer: Callable[[], Slicer] = Slicer) -> None:
        self._store = store
        self._entity = entity
        self.kind = entity.kind
        self._slicer = slicer  # validating a page hands the loop back every ~1 ms (cache refreshes run on it)

    def _label(self, id: str) -> str:
        return f"{self.kind.replace('_', ' ')} '{id}'"

    def _load(self, doc: dict[str, Any]) -> E:
        try:
            return self._entity.from_document(doc)  # type: ignore[return-value]
        except ValidationError as exc:
            bad = self._invalid(doc, exc)
            raise InvalidStoredDocument(
                f"The stored {self._label(bad.id)} no longer matches its contract; delete it or replace it.",
                details=bad.model_dump()) from None

    def _invalid(self, doc: dict[str, Any], exc: ValidationError) -> InvalidDocument:
        bad = InvalidDocument(id=str(doc.get("id")), project_id=str(doc.get("pk")), kind=self.kind,
                              errors=_errors(exc))
        log.warning("invalid stored document kind=%s id=%s project=%s: %s", bad.kind, bad.id, bad.project_id,
                    "; ".join(f"{e['field']}: {e['message']}" for e in bad.errors))
        return bad

    def accept(self, doc: dict[str, Any]) -> E | InvalidDocument:
        """A listed document of this kind as its entity, or — when it no longer validates — its logged
        InvalidDocument: what a list does with each document (also for `load_kinds`, several kinds per query)."""
        try:
            return self._entity.from_document(doc)  # type: ignore[return-value]
        except ValidationError as exc:
            return self._invalid(doc, exc)  # one bad document never hides its neighbours

    async def find_raw(self, partition: str, id: str) -> dict[str, Any] | None:
        """The raw document if it exists and is of this repository's kind (valid or not)."""
        doc = await self._store.read(partition, id)
        return doc if doc is not None and doc.get("kind") == self.kind else None

    async def find(self, partition: str, id: str) -> E | None:
        doc = await self.find_raw(partition, id)
        return self._load(doc) if doc is not None else None

    async def get(self, partition: str, id: str) -> E:
        found = await self.find(partition, id)
        if found is None:
            raise NotFound(f"{self._label(id)} does not exist.")
        return found

    async def create(self, entity: E) -> E:
        try:
            return self._load(await self._store.create(entity.to_document()))
        except AlreadyExists:
            taken = await self._store.read(entity.project_id, entity.id)
            if taken is not None and taken.get("kind") != self.kind:
                raise AlreadyExists(f"The id '{entity.id}' is already used by a {taken.get('kind')} in this "
                                    "project; choose another.", code="id_taken",
                                    details=[{"field": "id", "message": "used by another resource"}]) from None
            raise

    async def replace(self, entity: E) -> E:
        """Conditional on `entity.etag`, the version that was read: it can only overwrite that very version,
        never blindly. The kind of the stored version is checked too, so an ETag obtained elsewhere cannot make
        it land on another kind's document."""
        if entity.etag is None:
            raise ValueError("replace needs the ETag of the version that was read")
        current = await self.find_raw(entity.project_id, entity.id)
        if current is None:
            raise NotFound(f"{self._label(entity.id)} does not exist.")
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

    async def rewrite(self, entity: E, if_match: str | None = None) -> E:
        """Replace the stored document of this kind with `entity` even if the stored one no longer validates (how a
        PUT repairs it); conditional on the ETag of the version read here, so still never a blind overwrite."""
        doc = await self.find_raw(entity.project_id, entity.id)
        if doc is None:
            raise NotFound(f"{self._label(entity.id)} does not exist.")
        if if_match is not None and if_match != doc.get("_etag"):
            raise PreconditionFailed("If-Match does not match the current ETag of the resource.",
                                     details={"etag": doc.get("_etag")})
        entity.etag = doc["_etag"]
        try:
            return await self.replace(entity)
        except PreconditionFailed:
            if if_match is not None:
                raise
            raise ConcurrentUpdate("The resource was changed concurrently; read it again and retry.") from None

    async def delete(self, partition: str, id: str, if_match: str | None = None) -> None:
        """Only a document of this kind; works on a document that no longer validates (that is how it is
        repaired). The delete is conditional on the ETag of the version whose kind was checked."""
        doc = await self.find_raw(partition, id)
        if doc is None:
            raise NotFound(f"{self._label(id)} does not exist.")
        if if_match is not None and if_match != doc.get("_etag"):
            raise PreconditionFailed("If-Match does not match the current ETag of the resource.",
                                     details={"etag": doc.get("_etag")})
        try:
            await self._store.delete(partition, id, doc["_etag"])
        except PreconditionFailed:
            if if_match is not None:
                raise
            raise ConcurrentUpdate("The resource was changed concurrently; read it again and retry.") from None

    async def list(self, partition: str | None, *, limit: int = 50, cursor: str | None = None,
                   contains: dict[str, Any] | None = None, **equals: Any) -> Page[E]:
        page = await self._store.query(Query(self.kind, partition, equals, contains or {}), limit, cursor)
        items: list[E] = []
        invalid: list[InvalidDocument] = []
        slicer = self._slicer()  # a 200-document page is ~5–10 ms of validation: never in one step on the loop
        for doc in page.items:
            entity = self.accept(doc)
            (invalid if isinstance(entity, InvalidDocument) else items).append(entity)  # type: ignore[arg-type]
            await slicer.tick()
        return Page(items, page.cursor, invalid)


async def load_kinds(store: DocumentStore, partition: str, repos: list[Repository[Any]], *, page: int = 500,
                     max_pages: int = 160, slicer: Callable[[], Slicer] = Slicer) -> dict[str, dict[str, Any]]:
    """Every valid document of the repositories' kinds in one partition, by kind then id, read with ONE paged query
    for all the kinds (a registry snapshot: one round trip and one SDK query execution instead of one per kind —
    each a 1–12 ms step of SDK work on the event loop, paid again at every cache refresh). Invalid documents are
    skipped and logged, never hiding their neighbours; at most `max_pages` pages (bounded)."""
    by_kind = {r.kind: r for r in repos}
    found: dict[str, dict[str, Any]] = {kind: {} for kind in by_kind}
    cursor: str | None = None
    ticks = slicer()  # validating a page hands the loop back every ~1 ms
    for _ in range(max_pages):
        result = await store.query(Query(tuple(by_kind), partition), page, cursor)
        for doc in result.items:
            repo = by_kind.get(doc.get("kind"))  # type: ignore[arg-type]
            entity = repo.accept(doc) if repo is not None else None
            if entity is not None and not isinstance(entity, InvalidDocument):
                found[repo.kind][entity.id] = entity  # type: ignore[union-attr]
            await ticks.tick()
        cursor = result.cursor
        if cursor is None:
            break
    return found
