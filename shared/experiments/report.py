"""Results of an experiment, computed from the request log (and the feedback documents).

Which calls count: rows of the experiment's model, tagged with the experiment, between its first start and its
stop (or now), except
- calls served while it was paused (they all went to the control, unrandomised: `experiment_paused`),
- cache hits (no variant answered them),
- calls the gateway refused with a 4xx before any backend answered (quota, guardrail block, bad request): they
  say nothing about the variant.
An error is a 5xx, an upstream answer ≥ 400, or a stream the upstream broke (`upstream_*` error codes).
With more than two variants every treatment is compared with the control (the first variant) at alpha / (k − 1)
(Bonferroni), and the verdict names the treatment that beat the control with the smallest p-value — or the
control, when it beat every treatment."""
from __future__ import annotations

from datetime import datetime

from ..domain.base import AppModel, Pillar
from ..domain.monitoring import MAX_WINDOW, LogFilter
from ..monitoring.logquery import iterate
from ..monitoring.rows import LogRow
from .domain import Experiment, ExperimentStatus
from .feedback import Feedback
from .results import Samples, Verdict, VariantResult, results, verdict


class Pair(AppModel):
    control: str
    variant: str
    alpha: float
    verdict: Verdict


class ExperimentResults(AppModel):
    experiment: str
    model: str
    status: ExperimentStatus
    since: datetime | None
    until: datetime | None
    variants: list[VariantResult]
    comparisons: list[Pair]
    winner: str | None
    summary: str
    rows_counted: int
    truncated: bool  # the row limit (EXPERIMENT_RESULTS_MAX_ROWS) was reached: newest calls only


def counts(row: LogRow) -> bool:
    a = row.attributes
    if a.get("experiment_paused") or row.cache_hit:
        return False
    return not (400 <= row.status < 500 and row.backend is None)


def is_error(row: LogRow) -> bool:
    return (row.status >= 500 or (row.status >= 400 and row.backend is not None)
            or str(row.error_code or "").startswith("upstream"))


def tally(exp: Experiment, rows: list[LogRow], feedback: list[Feedback]) -> dict[str, Samples]:
    samples = {v.id: Samples() for v in exp.spec.variants}
    calls: dict[tuple[str, str], str] = {}
    for row in rows:
        s = samples.get(str(row.attributes.get("variant")))
        if row.attributes.get("experiment") != exp.id or s is None or not counts(row):
            continue
        s.requests += 1
        s.errors += is_error(row)
        s.latencies_ms.append(row.latency_ms)
        s.tokens += row.total_tokens or 0
        s.cost_usd += row.cost_usd or 0.0
        calls[(row.key_id or "", row.request_id)] = str(row.attributes["variant"])
    for f in feedback:  # only feedback on a call that counts, on the variant the log recorded
        variant = calls.get((f.key_id, f.request_id))
        if variant is not None:
            samples[variant].feedback.append(f.score)
    return samples


def judge(exp: Experiment, samples: dict[str, Samples]) -> tuple[list[Pair], str | None, str]:
    control, others = exp.spec.variants[0].id, [v.id for v in exp.spec.variants[1:]]
    alpha = exp.spec.alpha / len(others)
    pairs = [Pair(control=control, variant=v, alpha=alpha,
                  verdict=verdict(control, samples[control], v, samples[v], alpha=alpha,
                                  min_samples=exp.spec.min_samples)) for v in others]
    beat_control = [p for p in pairs if p.verdict.winner == p.variant]
    if beat_control:
        best = min(beat_control, key=lambda p: min(c.p_value for c in p.verdict.comparisons if c.significant))
        return pairs, best.variant, best.verdict.summary
    if pairs and all(p.verdict.winner == control for p in pairs):
        return pairs, control, pairs[0].verdict.summary if len(pairs) == 1 else f"winner: {control} (beat every variant)"
    reasons = {p.verdict.summary for p in pairs}
    return pairs, None, reasons.pop() if len(reasons) == 1 else "not yet significant"


async def compute(exp: Experiment, table: object, feedback: list[Feedback], now: datetime, *,
                  max_rows: int) -> ExperimentResults:
    rows: list[LogRow] = []
    since = until = None
    if exp.started_at is not None:
        until = min(exp.stopped_at or now, now)
        since = max(exp.started_at, until - MAX_WINDOW)
        if since < until:
            flt = LogFilter(pillar=Pillar.models, resource=exp.spec.model, since=since, until=until)
            async for row in iterate(table, exp.project_id, flt, now, max_rows=max_rows):
                rows.append(row)
    samples = tally(exp, rows, feedback)
    pairs, winner, summary = judge(exp, samples)
    return ExperimentResults(
        experiment=exp.id, model=exp.spec.model, status=exp.status, since=since, until=until,
        variants=results([(v.id, samples[v.id]) for v in exp.spec.variants]), comparisons=pairs, winner=winner,
        summary=summary, rows_counted=sum(s.requests for s in samples.values()), truncated=len(rows) >= max_rows)
