"""Self-service credentials: a developer asks for a key; the project's setting issues it at once or waits for an
admin. The secret is generated only when the requester claims an approved request, so it is never stored."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..web.pages import PageOut
from .base import AppModel, Contract, Entity
from .keys import ScopeName
from .times import UtcDatetime

RequestState = Literal["pending", "approved", "rejected", "claimed"]


class KeyRequest(Entity):
    kind: ClassVar[str] = "key_request"
    requester: str  # the developer's subject (Entra object id)
    requester_name: str | None = None
    name: str
    models: list[str] | None = None
    reason: str = ""
    state: RequestState = "pending"
    decided_by: str | None = None
    decided_at: UtcDatetime | None = None
    key_id: str | None = None


class KeyRequestCreate(Contract):
    name: str = Field(min_length=1, max_length=200)
    models: list[ScopeName] | None = Field(default=None, max_length=1000)
    reason: str = Field(default="", max_length=2000)


class KeyRequestDecision(Contract):
    note: str = Field(default="", max_length=2000)


class KeyRequestOut(AppModel):
    id: str
    project_id: str
    requester: str
    name: str
    models: list[str] | None
    reason: str
    state: RequestState
    key_id: str | None
    created_at: str

    @classmethod
    def of(cls, r: KeyRequest) -> "KeyRequestOut":
        return cls(id=r.id, project_id=r.project_id, requester=r.requester, name=r.name, models=r.models,
                   reason=r.reason, state=r.state, key_id=r.key_id, created_at=r.created_at.isoformat())


class KeyRequestList(PageOut[KeyRequestOut]):
    pass
