"""Per-model routing policy: retries/failover and the circuit breaker. Defaults suit most deployments."""
from __future__ import annotations

from pydantic import Field

from .base import Contract


class RetryPolicy(Contract):
    max_attempts: int = Field(default=3, ge=1, le=10, description="Total attempts across backends.")
    retry_on_status: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504])
    total_timeout_seconds: float = Field(default=120, gt=0)
    # When a 429/503 carries no Retry-After, how long to skip that backend.
    default_cool_down_seconds: float = Field(default=1.0, ge=0)
    max_cool_down_seconds: float = Field(default=300, gt=0)


class BreakerPolicy(Contract):
    window_seconds: float = Field(default=30, gt=0)
    failure_count: int = Field(default=5, ge=1, description="Failures in the window that open the breaker.")
    failure_ratio: float = Field(default=0.5, gt=0, le=1, description="…or this failure ratio, once min_calls.")
    min_calls: int = Field(default=10, ge=1)
    trip_seconds: float = Field(default=30, gt=0, description="How long it stays open before one probe.")


class RoutingPolicy(Contract):
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
