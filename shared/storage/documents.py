"""The raw document store behind the registry: one partitioned container of JSON documents.

Two implementations: Cosmos DB (`cosmos.py`) and in-memory (`memory.py`, for fast unit tests). Both keep the same
contract, which the typed `Repository` builds on: ETags for optimistic concurrency, opaque continuation cursors
for paging, and errors from `shared.errors` only.
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import BadRequest, ValidationFailed


@dataclass(frozen=True)
class Query:
    kind: str | tuple[str, ...]  # a tuple: documents of any of these kinds, in one query (a registry snapshot)
    partition: str | None = None  # None: across all projects
    equals: dict[str, Any] = field(default_factory=dict)  # top-level field == value
    contains: dict[str, Any] = field(default_factory=dict)  # top-level array field contains value


def kinds_of(q: Query) -> tuple[str, ...]:
    return q.kind if isinstance(q.kind, tuple) else (q.kind,)


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


def non_finite_paths(value: Any, path: str = "") -> list[str]:
    """Where `value` holds NaN or ±Infinity. JSON has no such numbers: Cosmos refuses them with an error that
    looks like an outage, so the stores refuse them first, naming the field."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path or "document"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{path}.{i}" if path else str(i))]
    return []


def ensure_storable(doc: dict[str, Any]) -> None:
    bad = non_finite_paths(doc)
    if bad:
        raise ValidationFailed(f"Numbers must be finite: {', '.join(bad)}.",
                               details=[{"field": p, "message": "NaN and Infinity are not allowed"} for p in bad])
