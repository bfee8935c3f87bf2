"""Quotas: limits attached to a project, a key, or one resource of a pillar (a model, a tool, an agent); every
quota that applies to a call is enforced.

A resource quota is scoped by (pillar, resource). Its stored `scope` is the pillar's resource word ("model" for
the models pillar — what every stored quota document already says), so documents written before the pipeline
read unchanged and keep their ids and counters."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ..web.pages import PageOut
from .base import AppModel, Contract, Entity, InvalidDocument, Pillar

QuotaScope = Literal["project", "key", "model", "tool", "agent"]
# pillar → the scope word naming one of its resources. The admin API accepts a word once its pillar registers
# the check that the named resource exists (functions/models_admin_api.py: today "model").
RESOURCE_SCOPES: dict[Pillar, str] = {Pillar.models: "model", Pillar.tools: "tool", Pillar.agents: "agent"}
PILLAR_OF_SCOPE: dict[str, Pillar] = {word: pillar for pillar, word in RESOURCE_SCOPES.items()}


class QuotaLimits(Contract):
    requests_per_minute: int | None = Field(default=None, gt=0, le=10**9)
    tokens_per_minute: int | None = Field(default=None, gt=0, le=10**12)
    tokens_per_day: int | None = Field(default=None, gt=0, le=10**12)
    tokens_per_month: int | None = Field(default=None, gt=0, le=10**12)
    cost_per_month_usd: float | None = Field(default=None, gt=0, le=10**9, allow_inf_nan=False, description="From the model's prices.")

    @model_validator(mode="after")
    def _at_least_one(self) -> "QuotaLimits":
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("set at least one limit")
        return self


class Quota(Entity):
    kind: ClassVar[str] = "quota"
    scope: QuotaScope
    target: str
    limits: QuotaLimits

    @staticmethod
    def doc_id(scope: str, target: str) -> str:
        return f"{scope}.{target}"

    @property
    def pillar(self) -> Pillar | None:
        """The pillar of a resource quota; None for project and key quotas (they span every pillar)."""
        return PILLAR_OF_SCOPE.get(self.scope)


class QuotaOut(AppModel):
    project_id: str
    scope: QuotaScope
    target: str
    limits: QuotaLimits
    updated_at: str

    @classmethod
    def of(cls, q: Quota) -> "QuotaOut":
        return cls(project_id=q.project_id, scope=q.scope, target=q.target, limits=q.limits,
                   updated_at=q.updated_at.isoformat())


class QuotaList(PageOut[QuotaOut]):
    invalid: list[InvalidDocument] = Field(default_factory=list, description=(
        "Stored quotas that no longer validate: skipped, so NOT enforced; delete or replace them."))
