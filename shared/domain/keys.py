"""Virtual keys: the data-plane credential. The secret is shown once; the registry keeps a keyed hash."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from .base import AppModel, Contract, Entity, Pillar, utcnow
from .times import UtcDatetime

# A model, tool or agent name in a key's scope (the longest the registries accept is a namespaced tool name, 64).
ScopeName = Annotated[str, Field(min_length=1, max_length=256)]

KEY_PREFIX = "sk-gw-"


class PreviousSecret(AppModel):
    hash: str
    valid_until: UtcDatetime


class VirtualKey(Entity):
    kind: ClassVar[str] = "virtual_key"
    name: str
    prefix: str  # first characters of the secret, for display and log correlation
    hash: str  # HMAC-SHA256(secret) with the deployment's pepper
    # Rotation overlap: earlier secrets that still work until their deadline.
    previous: list[PreviousSecret] = Field(default_factory=list)
    # Every hash that may open this key (current + overlapping), the field lookups query.
    lookup: list[str] = Field(default_factory=list)
    # UtcDatetime on read too: documents stored before naive instants were normalised still load (as UTC).
    expires_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None
    # Per-pillar scopes, one field per pillar named after it (stored keys' `models` reads unchanged);
    # None: every resource of the project in that pillar.
    models: list[str] | None = None
    tools: list[str] | None = None
    agents: list[str] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # "legacy": issued before self-verifying secrets (no MAC); documents without the field are legacy by definition.
    secret_format: Literal["legacy", "v1"] = "legacy"

    def scopes(self) -> dict[Pillar, frozenset[str]]:
        """The pillars this key is limited in → the resources it may use there."""
        return {p: frozenset(names) for p in Pillar if (names := getattr(self, p.value)) is not None}

    def accepts(self, digest: str, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return digest == self.hash or any(p.hash == digest and p.valid_until > now for p in self.previous)

    def state(self, now: datetime | None = None) -> str:
        now = now or utcnow()
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class KeyCreate(Contract):
    name: str = Field(min_length=1, max_length=200)
    expires_at: UtcDatetime | None = Field(
        default=None, description="ISO 8601 instant; without an offset (or a bare date: 00:00 that day) it is "
                                  "read as UTC. Must lie in the future.")
    models: list[ScopeName] | None = Field(default=None, max_length=1000, description="Models this key may call; "
                                     "omitted: every model of the project.")
    tools: list[ScopeName] | None = Field(default=None, max_length=1000, description="Tools this key may call; "
                                    "omitted: every tool of the project.")
    agents: list[ScopeName] | None = Field(default=None, max_length=1000, description="Agents this key may call; "
                                     "omitted: every agent of the project.")
    metadata: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=1024)]] = \
        Field(default_factory=dict, max_length=32)

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        # Validated here, before anything is stored: a key born expired is a mistake, never useful.
        if value is not None and value <= utcnow():
            raise ValueError("must be in the future")
        return value


class KeyRotate(Contract):
    overlap_seconds: int = Field(default=3600, ge=0, le=31_536_000, description="How long the previous secret keeps working.")


class KeyOut(AppModel):
    id: str
    project_id: str
    name: str
    prefix: str
    state: str
    expires_at: str | None
    revoked_at: str | None
    models: list[str] | None
    tools: list[str] | None = None
    agents: list[str] | None = None
    metadata: dict[str, str]
    created_at: str
    previous_valid_until: list[str] = Field(default_factory=list)
    secret_format: str = Field(default="v1", description="`legacy` secrets carry no MAC; rotate them to get `v1`.")

    @classmethod
    def of(cls, k: VirtualKey) -> "KeyOut":
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return cls(id=k.id, project_id=k.project_id, name=k.name, prefix=k.prefix, state=k.state(),
                   expires_at=iso(k.expires_at), revoked_at=iso(k.revoked_at), models=k.models,
                   tools=k.tools, agents=k.agents,
                   metadata=k.metadata, created_at=k.created_at.isoformat(),
                   previous_valid_until=[p.valid_until.isoformat() for p in k.previous],
                   secret_format=k.secret_format)


class KeyCreated(KeyOut):
    secret: str = Field(description="Shown only in this response. Store it now.")
