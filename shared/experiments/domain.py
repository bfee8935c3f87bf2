"""A/B experiments on a model name: variants with traffic weights, sticky assignment, a lifecycle."""
from __future__ import annotations

import hashlib
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..domain.base import AppModel, Contract, Entity, InvalidDocument

ExperimentStatus = Literal["draft", "running", "paused", "stopped"]
# Which transitions an admin may make: stopped is final (its results stay readable).
TRANSITIONS: dict[str, frozenset[str]] = {"draft": frozenset({"running", "stopped"}),
                                          "running": frozenset({"paused", "stopped"}),
                                          "paused": frozenset({"running", "stopped"}), "stopped": frozenset()}


class Variant(Contract):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    weight: int = Field(ge=0, le=10_000, description="Share of traffic, relative to the other variants.")
    backends: list[str] | None = Field(default=None, max_length=32, description=(
        "Backend ids of the model this variant is served by (a pool); none: all of them."))
    deployment: str | None = Field(default=None, min_length=1, max_length=128, description=(
        "A model version / deployment to send instead of the backends' own."))


class ExperimentSpec(Contract):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    model: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="The public model name it splits.")
    variants: list[Variant] = Field(min_length=2, max_length=8)
    sticky_by: Literal["key", "user"] = Field(default="key", description=(
        "user: the caller's `x-gateway-user` header (else the key) keeps a user on one variant."))
    alpha: float = Field(default=0.05, gt=0, le=0.2, allow_inf_nan=False)
    min_samples: int = Field(default=30, ge=2, le=1_000_000, description="Per variant, before any verdict.")

    @model_validator(mode="after")
    def _weights(self) -> "ExperimentSpec":
        if len({v.id for v in self.variants}) != len(self.variants):
            raise ValueError("variant ids must be unique")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a positive weight")
        return self


Action = Literal["create", "update", "start", "pause", "stop"]
# The status an action leads to (update keeps the status; start also resumes a paused experiment).
ACTION_STATUS: dict[str, ExperimentStatus] = {"start": "running", "pause": "paused", "stop": "stopped"}
MAX_HISTORY = 100  # audit entries kept on the document (the oldest are dropped first)


class AuditEntry(Contract):
    """Who changed an experiment, when, and from which status to which."""

    action: Action
    from_status: ExperimentStatus | None = None
    to_status: ExperimentStatus
    by: str = Field(max_length=256)
    at: datetime


class Experiment(Entity):
    kind: ClassVar[str] = "experiment"
    spec: ExperimentSpec
    status: ExperimentStatus = "draft"
    started_at: datetime | None = None  # the first start: results count calls from here
    stopped_at: datetime | None = None  # … until here (or now)
    history: list[AuditEntry] = Field(default_factory=list, max_length=MAX_HISTORY)

    @property
    def control(self) -> Variant:
        """The first variant is the control: where all traffic goes while the experiment is paused."""
        return self.spec.variants[0]


class ExperimentOut(ExperimentSpec):
    project_id: str
    status: ExperimentStatus
    started_at: datetime | None
    stopped_at: datetime | None
    history: list[AuditEntry]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: Experiment) -> "ExperimentOut":
        return cls(**e.spec.model_dump(), project_id=e.project_id, status=e.status, started_at=e.started_at,
                   stopped_at=e.stopped_at, history=e.history, created_at=e.created_at, updated_at=e.updated_at)


class ExperimentList(AppModel):
    items: list[ExperimentOut]
    invalid: list[InvalidDocument] = Field(default_factory=list, description="Stored but no longer valid.")


def assign(experiment_id: str, subject: str, variants: list[Variant]) -> Variant:
    """Sticky and stateless: the same subject always lands on the same variant on any instance, and the split
    follows the weights (SHA-256 of experiment and subject, uniform over the total weight)."""
    total = sum(v.weight for v in variants)
    digest = hashlib.sha256(f"{experiment_id}\x00{subject}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for v in variants:
        if point < v.weight:
            return v
        point -= v.weight
    raise AssertionError("unreachable: point < total")
