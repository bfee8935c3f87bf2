"""The raw document store behind the registry: one partitioned container of JSON documents.

Two implementations: Cosmos DB (`cosmos.py`) and in-memory (`memory.py`, for fast unit tests). Both keep the same
contract, which the typed `Repository` builds on: ETags for optimistic concurrency, opaque continuation cursors
for paging, and errors from `shared.errors` only.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import BadRequest


@dataclass(frozen=True)
class Query:
    kind: str
    partition: str | None = None  # None: across all projects
    equals: dict[str, Any] = field(default_factory=dict)  # top-level field == value
    contains: dict[str, Any] = field(default_factory=dict)  # top-level array field contains value


@dataclass(frozen=True)
class DocPage:
    items: list[dict[str, Any]]
    cursor: str | None  # opaque; None when there is nothing more


class DocumentStore(Protocol):
    async def read(self, partition: str, id: str) -> dict[str, Any] | None: ...

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert; AlreadyExists when the id is taken in that partition."""

    async def replace(self, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        """Replace only if the stored ETag still equals `etag`; PreconditionFailed otherwise."""

    async def delete(self, partition: str, id: str, etag: str | None = None) -> None: ...

    async def query(self, q: Query, limit: int, cursor: str | None = None) -> DocPage: ...

    async def ping(self) -> None:
        """Raise DependencyUnavailable when the store cannot be reached."""

    async def close(self) -> None: ...


def encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("The 'cursor' query parameter is not a cursor this API returned.", code="invalid_cursor",
                         details=[{"field": "cursor", "message": "invalid cursor"}]) from None
