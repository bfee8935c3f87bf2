"""Projects (tenants) and the pillar feature flags — the rollout controls."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from .base import AppModel, Contract, Entity, GLOBAL_PARTITION, Pillar, Slug


class PillarState(AppModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False


def _pillars(default: bool) -> dict[Pillar, PillarState]:
    return {p: PillarState(enabled=default) for p in Pillar}


class Project(Entity):
    kind: ClassVar[str] = "project"
    name: str
    description: str = ""
    # A project opts in per pillar; disabling keeps every registration, it only stops traffic.
    pillars: dict[Pillar, PillarState] = Field(default_factory=lambda: _pillars(False))
    # How developers get credentials for this project (used by the self-service key flow).
    key_issuance: Literal["auto", "approval"] = "approval"
    # Prompts and completions are not logged unless the project opts in (privacy by default).
    log_payloads: bool = False

    def model_post_init(self, _ctx: object) -> None:
        # The partition of a project is the project itself, so all its resources are one partition.
        object.__setattr__(self, "project_id", self.id)
        for p in Pillar:
            self.pillars.setdefault(p, PillarState())


class GlobalFlags(Entity):
    """Global kill switch per pillar. A single document in the global partition."""

    kind: ClassVar[str] = "global_flags"
    DOC_ID: ClassVar[str] = "global-flags"
    id: str = DOC_ID
    project_id: str = GLOBAL_PARTITION
    pillars: dict[Pillar, PillarState] = Field(default_factory=lambda: _pillars(True))

    def model_post_init(self, _ctx: object) -> None:
        for p in Pillar:
            self.pillars.setdefault(p, PillarState(enabled=True))


# ---- API contracts


class ProjectCreate(Contract):
    id: Slug = Field(description="Stable slug; also the partition of everything the project owns.")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    pillars: dict[Pillar, PillarState] | None = None
    key_issuance: Literal["auto", "approval"] = "approval"
    log_payloads: bool = False


class ProjectUpdate(Contract):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    key_issuance: Literal["auto", "approval"] | None = None
    log_payloads: bool | None = None


class FlagUpdate(Contract):
    enabled: bool


class PillarView(AppModel):
    enabled: bool = Field(description="The project's own switch.")
    globally_enabled: bool = Field(description="The global kill switch for this pillar.")
    effective: bool = Field(description="Traffic flows only when both are on.")


class ProjectOut(AppModel):
    id: str
    name: str
    description: str
    key_issuance: str
    log_payloads: bool
    pillars: dict[Pillar, PillarState]
    created_at: str
    updated_at: str
    etag: str | None

    @classmethod
    def of(cls, p: Project) -> "ProjectOut":
        return cls(
            id=p.id, name=p.name, description=p.description, key_issuance=p.key_issuance,
            log_payloads=p.log_payloads,
            pillars=p.pillars, created_at=p.created_at.isoformat(), updated_at=p.updated_at.isoformat(),
            etag=p.etag,
        )


class ProjectFlagsOut(AppModel):
    project_id: str
    pillars: dict[Pillar, PillarView]


class GlobalFlagsOut(AppModel):
    pillars: dict[Pillar, PillarState]
    etag: str | None
