"""Contracts of the monitoring surfaces: request-log queries, analytics queries, alert rules (issue 12)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from .base import AppModel, Contract, Entity, Pillar

MAX_WINDOW = timedelta(days=92)  # the longest range one query (or export) may span
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TimeRange(Contract):
    since: AwareDatetime | None = Field(default=None, description="Start (inclusive, ISO 8601 with zone); "
                                                                  "default: 24 h before `until`.")
    until: AwareDatetime | None = Field(default=None, description="End (exclusive); default: now.")

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        until = self.until or now
        since = self.since or until - timedelta(hours=24)
        if until - since > MAX_WINDOW:  # one side defaulted to now: still at most MAX_WINDOW of partitions
            from ..errors import ValidationFailed

            raise ValidationFailed(f"The range may span at most {MAX_WINDOW.days} days.",
                                   details=[{"field": "since", "message": "range too long"}])
        return since, until

    @model_validator(mode="after")
    def _bounded(self) -> "TimeRange":
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not 2000 <= value.year <= 2200:
                raise ValueError(f"'{name}' must be between the years 2000 and 2200")
        if self.since and self.until:
            if self.since >= self.until:
                raise ValueError("'since' must be before 'until'")
            if self.until - self.since > MAX_WINDOW:
                raise ValueError(f"the range may span at most {MAX_WINDOW.days} days")
        return self


class LogFilter(TimeRange):
    pillar: Pillar | None = None
    resource: Name | None = Field(default=None, description="Model, tool or agent name.")
    key_id: Name | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    outcome: Literal["ok", "error"] | None = Field(default=None, description="error: status ≥ 400.")
    error_code: Name | None = None
    correlation_id: Name | None = None


class LogQuery(LogFilter):
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=2000)] | None = None


class LogExport(LogFilter):
    format: Literal["csv", "jsonl"] = "jsonl"


# model / tool / agent: the resources of one pillar
Dimension = Literal["pillar", "resource", "key", "model", "tool", "agent"]


class AnalyticsQuery(TimeRange):
    pillar: Pillar | None = None
    resource: Name | None = None
    key_id: Name | None = None
    interval: Literal["hour", "day"] = "hour"
    by: Dimension = "resource"


# ---- alert rules

AlertKind = Literal["budget", "error_rate", "latency_slo", "failover_spike", "breaker_open", "sync_failure",
                    "approvals_waiting", "tools_quarantined"]


class AlertRuleSpec(Contract):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    kind: AlertKind
    threshold: float = Field(ge=0, le=10**9, allow_inf_nan=False, description=(
        "budget: % of the monthly cost quota used; error_rate: % of calls failing; latency_slo: p95 ms; "
        "failover_spike: failovers in the window; breaker_open / sync_failure (agent sync runs failed or partial "
        "in the window) / approvals_waiting (key requests, tool submissions and per-call tool approvals older "
        "than the window) / tools_quarantined (tools now quarantined): count."))
    window_minutes: int = Field(default=15, ge=5, le=1440)
    pillar: Pillar | None = None
    resource: Name | None = None
    min_requests: int = Field(default=10, ge=0, le=10**6, description="Below it, rate rules do not fire.")
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None = None
    webhook_secret_setting: Annotated[str, StringConstraints(pattern=r"^UPSTREAM_SECRET_[A-Z0-9_]{1,100}$")] | None = (
        Field(default=None, description="App setting holding the HMAC key that signs each notification."))
    enabled: bool = True


class Delivery(AppModel):
    at: datetime
    event: Literal["firing", "resolved"]
    attempts: int
    status: Literal["delivered", "failed"]
    last_error: str | None = None


class AlertRule(Entity):
    kind: ClassVar[str] = "alert_rule"
    spec: AlertRuleSpec
    state: Literal["ok", "firing"] = "ok"
    value: float | None = None  # the last evaluated value
    changed_at: datetime | None = None
    evaluated_at: datetime | None = None
    deliveries: list[Delivery] = Field(default_factory=list)  # newest last, at most 20 kept


class AlertRuleOut(AppModel):
    project_id: str
    spec: AlertRuleSpec
    state: str
    value: float | None
    changed_at: datetime | None
    evaluated_at: datetime | None
    deliveries: list[Delivery]

    @classmethod
    def of(cls, r: AlertRule) -> "AlertRuleOut":
        return cls(project_id=r.project_id, spec=r.spec, state=r.state, value=r.value, changed_at=r.changed_at,
                   evaluated_at=r.evaluated_at, deliveries=r.deliveries)


class SlaQuery(Contract):
    pillar: Pillar | None = None
    availability_target: float = Field(default=99.9, gt=0, lt=100, allow_inf_nan=False,
                                       description="% of calls without a gateway/upstream failure (5xx).")
    latency_threshold_ms: float = Field(default=2000, gt=0, le=600_000, allow_inf_nan=False)
    latency_target: float = Field(default=99.0, gt=0, lt=100, allow_inf_nan=False,
                                  description="% of calls at or under latency_threshold_ms.")


class AdoptionQuery(Contract):
    months: int = Field(default=3, ge=1, le=3, description="Calendar months back, this one included (≤ 92 days).")
    approval_sla_hours: float = Field(default=24, gt=0, le=720, allow_inf_nan=False)
