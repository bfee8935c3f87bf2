"""Per-model routing policy: retries/failover and the circuit breaker. Defaults suit most deployments."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Contract

HttpStatus = Annotated[int, Field(ge=100, le=599)]


class RetryPolicy(Contract):
    max_attempts: int = Field(default=3, ge=1, le=10, description="Total attempts across backends.")
    retry_on_status: list[HttpStatus] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504],
                                           max_length=32)
    total_timeout_seconds: float = Field(default=120, gt=0, le=3600, allow_inf_nan=False)
    # When a 429/503 carries no Retry-After, how long to skip that backend.
    default_cool_down_seconds: float = Field(default=1.0, ge=0, le=3600, allow_inf_nan=False)
    max_cool_down_seconds: float = Field(default=300, gt=0, le=86_400, allow_inf_nan=False)


class BreakerPolicy(Contract):
    window_seconds: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)
    failure_count: int = Field(default=5, ge=1, le=10_000, description="Failures in the window that open the breaker.")
    failure_ratio: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False, description="…or this failure ratio, once min_calls.")
    min_calls: int = Field(default=10, ge=1, le=10_000)
    trip_seconds: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False, description="How long it stays open before one probe.")


class RoutingPolicy(Contract):
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
