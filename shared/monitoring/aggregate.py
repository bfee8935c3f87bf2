"""Mergeable per-bucket aggregates of request-log rows: counts and sums plus latency histograms.

Every field merges by addition (histograms bucket-wise), so an hour's aggregates add up to a day, a project's
resources add up to the project, and a read over millions of calls touches only a few hundred aggregate rows.
"""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field

from ..domain.base import AppModel
from . import histogram
from .rows import LogRow

_SUMS = ("requests", "errors", "server_errors", "prompt_tokens", "completion_tokens", "total_tokens",
         "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms_sum", "overhead_ms_sum", "cache_hits",
         "failovers", "guardrail_blocks", "quota_refusals")


class Aggregate(AppModel):
    requests: int = 0
    errors: int = 0  # status ≥ 400
    server_errors: int = 0  # status ≥ 500: what availability counts against
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms_sum: float = 0.0
    overhead_ms_sum: float = 0.0
    cache_hits: int = 0
    failovers: int = 0
    guardrail_blocks: int = 0
    quota_refusals: int = 0
    latency_hist: dict[int, int] = Field(default_factory=dict)
    overhead_hist: dict[int, int] = Field(default_factory=dict)
    failovers_by_backend: dict[str, int] = Field(default_factory=dict)

    def add_row(self, row: LogRow) -> None:
        self.requests += 1
        self.errors += row.status >= 400
        self.server_errors += row.status >= 500
        for name in ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens"):
            setattr(self, name, getattr(self, name) + (getattr(row, name) or 0))
        self.cost_usd += row.cost_usd or 0.0
        self.latency_ms_sum += row.latency_ms
        self.overhead_ms_sum += row.overhead_ms
        self.cache_hits += row.cache_hit
        self.failovers += row.failovers
        self.guardrail_blocks += row.guardrail_blocked
        self.quota_refusals += row.status == 429 and "quota" in (row.error_code or "quota")
        histogram.add(self.latency_hist, row.latency_ms)
        histogram.add(self.overhead_hist, row.overhead_ms)
        for backend in row.failed_backends() if row.failovers else ():
            self.failovers_by_backend[backend] = self.failovers_by_backend.get(backend, 0) + 1

    def merge(self, other: "Aggregate") -> None:
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        histogram.merge(self.latency_hist, other.latency_hist)
        histogram.merge(self.overhead_hist, other.overhead_hist)
        for b, n in other.failovers_by_backend.items():
            self.failovers_by_backend[b] = self.failovers_by_backend.get(b, 0) + n

    def to_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {name: getattr(self, name) for name in _SUMS}
        props["cost_usd"] = float(self.cost_usd)  # stays Double in Tables
        props["latency_ms_sum"] = float(self.latency_ms_sum)
        props["overhead_ms_sum"] = float(self.overhead_ms_sum)
        props["latency_hist"] = histogram.encode(self.latency_hist)
        props["overhead_hist"] = histogram.encode(self.overhead_hist)
        props["failovers_by_backend"] = orjson.dumps(self.failovers_by_backend).decode()
        return props

    @classmethod
    def from_properties(cls, e: dict[str, Any]) -> "Aggregate":
        by_backend = e.get("failovers_by_backend")
        try:
            backends = orjson.loads(by_backend) if isinstance(by_backend, str) else {}
        except orjson.JSONDecodeError:
            backends = {}
        data = {n: e[n] for n in _SUMS if isinstance(e.get(n), (int, float)) and not isinstance(e.get(n), bool)}
        return cls(**data, latency_hist=histogram.decode(e.get("latency_hist")),
                   overhead_hist=histogram.decode(e.get("overhead_hist")),
                   failovers_by_backend={k: v for k, v in backends.items() if isinstance(v, int)}
                   if isinstance(backends, dict) else {})


class Summary(AppModel):
    """What the analytics API answers for one bucket or one breakdown group."""

    requests: int
    errors: int
    error_rate: float
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_usd: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    latency_ms_p99: float | None
    latency_ms_mean: float | None
    overhead_ms_p50: float | None
    overhead_ms_p95: float | None
    overhead_ms_mean: float | None
    cache_hit_rate: float
    failovers: int
    failovers_by_backend: dict[str, int]
    guardrail_blocks: int
    quota_refusals: int

    @classmethod
    def of(cls, a: Aggregate) -> "Summary":
        n = a.requests
        p = histogram.percentile
        return cls(requests=n, errors=a.errors, error_rate=round(a.errors / n, 6) if n else 0.0,
                   prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
                   total_tokens=a.total_tokens, cached_tokens=a.cached_tokens, reasoning_tokens=a.reasoning_tokens,
                   cost_usd=round(a.cost_usd, 9), latency_ms_p50=p(a.latency_hist, 50),
                   latency_ms_p95=p(a.latency_hist, 95), latency_ms_p99=p(a.latency_hist, 99),
                   latency_ms_mean=round(a.latency_ms_sum / n, 3) if n else None,
                   overhead_ms_p50=p(a.overhead_hist, 50), overhead_ms_p95=p(a.overhead_hist, 95),
                   overhead_ms_mean=round(a.overhead_ms_sum / n, 3) if n else None,
                   cache_hit_rate=round(a.cache_hits / n, 6) if n else 0.0, failovers=a.failovers,
                   failovers_by_backend=dict(sorted(a.failovers_by_backend.items())),
                   guardrail_blocks=a.guardrail_blocks, quota_refusals=a.quota_refusals)
