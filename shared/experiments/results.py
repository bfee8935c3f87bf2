"""Per-variant results of an experiment and the plain verdict an admin reads."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..domain.base import AppModel
from .stats import percentile, two_proportions, welch


@dataclass
class Samples:
    """What the request log and the feedback endpoint hold for one variant."""

    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    feedback: list[float] = field(default_factory=list)


class VariantResult(AppModel):
    variant: str
    requests: int
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    tokens: int
    cost_usd: float
    feedback_count: int
    mean_feedback: float | None


class Comparison(AppModel):
    metric: str
    statistic: float
    p_value: float
    significant: bool
    better: str | None  # the variant that is better on this metric when significant


class Verdict(AppModel):
    winner: str | None
    summary: str
    comparisons: list[Comparison]


def summarize(variant: str, s: Samples) -> VariantResult:
    return VariantResult(
        variant=variant, requests=s.requests, error_rate=s.errors / s.requests if s.requests else None,
        latency_p50_ms=percentile(s.latencies_ms, 50), latency_p95_ms=percentile(s.latencies_ms, 95),
        tokens=s.tokens, cost_usd=round(s.cost_usd, 6), feedback_count=len(s.feedback),
        mean_feedback=sum(s.feedback) / len(s.feedback) if s.feedback else None)


def verdict(a: str, sa: Samples, b: str, sb: Samples, *, alpha: float, min_samples: int) -> Verdict:
    """Feedback decides first (higher mean wins), then error rate (lower wins); latency is reported, and
    decides only when both are level. Below `min_samples` requests per variant there is no verdict."""
    if min(sa.requests, sb.requests) < min_samples:
        return Verdict(winner=None, summary=f"not yet significant: fewer than {min_samples} requests per variant",
                       comparisons=[])
    comps: list[Comparison] = []
    fb = welch(sa.feedback, sb.feedback)
    if fb is not None:
        comps.append(_comp("mean_feedback", fb.statistic, fb.p_value, alpha, a if fb.statistic > 0 else b))
    er = two_proportions(sa.errors, sa.requests, sb.errors, sb.requests)
    if er is not None:
        comps.append(_comp("error_rate", er.statistic, er.p_value, alpha, b if er.statistic > 0 else a))
    lat = welch(sa.latencies_ms, sb.latencies_ms)
    if lat is not None:
        comps.append(_comp("latency", lat.statistic, lat.p_value, alpha, b if lat.statistic > 0 else a))
    for c in comps:
        if c.significant:
            return Verdict(winner=c.better, summary=f"winner: {c.better} ({c.metric}, p = {c.p_value:.4f})",
                           comparisons=comps)
    return Verdict(winner=None, summary="not yet significant", comparisons=comps)


def _comp(metric: str, statistic: float, p: float, alpha: float, better: str) -> Comparison:
    significant = p < alpha
    return Comparison(metric=metric, statistic=round(statistic, 6), p_value=p, significant=significant,
                      better=better if significant else None)


def results(samples: Sequence[tuple[str, Samples]]) -> list[VariantResult]:
    return [summarize(v, s) for v, s in samples]
