"""Base of every registry entity: identity, partition (the owning project) and the optimistic-concurrency ETag."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Projects' partition key; documents that belong to no project (global flags) live in this partition.
GLOBAL_PARTITION = "_global"

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Pillar(str, Enum):
    models = "models"
    tools = "tools"
    agents = "agents"


# `defer_build`: a model's validator and serializer are built on its first use, not when its module is imported —
# the app declares ~240 models and the worker imports them all to index the functions (cold start,
# docs/benchmarks.md "Start-up"). Validation is the same; a broken model fails at its first use (every model is
# used by the unit tests: tests/unit/test_contract_bounds.py builds each contract's JSON schema).
_DEFER = ConfigDict(defer_build=True)


class AppModel(BaseModel):
    """Base of the app's other models (responses, wire shapes, rows): pydantic's, built on first use (above)."""

    model_config = _DEFER


class Contract(AppModel):
    """Inbound/outbound API contract: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", **_DEFER)


class Entity(AppModel):
    """A registry document. `kind` separates entity types inside the one partitioned container."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True, **_DEFER)
    kind: ClassVar[str]

    id: str
    project_id: str = GLOBAL_PARTITION
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set by the store on read/write; never persisted as a field of ours.
    etag: str | None = Field(default=None, exclude=True)

    def to_document(self) -> dict:
        doc = self.model_dump(mode="json")
        doc["pk"] = self.project_id
        doc["kind"] = self.kind
        return doc

    @classmethod
    def from_document(cls, doc: dict) -> "Entity":
        entity = cls.model_validate(doc)
        entity.etag = doc.get("_etag")
        return entity


class InvalidDocument(AppModel):
    """A stored document that no longer validates: listed to admins so they can repair it, never served."""

    id: str
    project_id: str
    kind: str
    errors: list[dict[str, str]] = Field(description="Each failing field and why.")
