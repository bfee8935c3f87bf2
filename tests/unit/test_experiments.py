"""A/B experiments: statistics against hand-computed values, sticky weighted assignment, verdicts, contracts."""
from __future__ import annotations

import collections

import pytest

from shared.experiments.domain import TRANSITIONS, ExperimentSpec, Variant, assign
from shared.experiments.results import Samples, summarize, verdict
from shared.experiments.stats import betainc, percentile, t_two_sided_p, two_proportions, welch


def test_welch_by_hand():
    # means 3 and 5, variances 2.5 and 2.5, n = 5: se = sqrt(0.5 + 0.5) = 1 → t = -2;
    # df = 1² / (0.5²/4 + 0.5²/4) = 8; two-sided p for t = 2, df = 8 is 0.0805 (t-table: 1.860 < 2 < 2.306)
    r = welch([1, 2, 3, 4, 5], [3, 4, 5, 6, 7])
    assert r.statistic == pytest.approx(-2.0) and r.df == pytest.approx(8.0)
    assert r.p_value == pytest.approx(0.08052, abs=1e-4)


def test_t_distribution_matches_table_critical_values():
    for t, df in ((12.706, 1), (2.228, 10), (2.042, 30), (1.960, 10**7)):
        assert t_two_sided_p(t, df) == pytest.approx(0.05, abs=2e-4)
    assert betainc(2, 3, 0.4) == pytest.approx(0.5248)  # 1 - Σ_{k<2} C(4,k) .4^k .6^(4-k) = 1 - .1296 - .3456


def test_two_proportion_z_by_hand():
    # 3 % vs 5 % of 1000: pooled 4 %, se = sqrt(.04 × .96 × 2/1000) = 0.0087636 → z = -2.2822, p = 0.0225
    r = two_proportions(30, 1000, 50, 1000)
    assert r.statistic == pytest.approx(-2.2822, abs=1e-4) and r.p_value == pytest.approx(0.0225, abs=1e-4)
    assert two_proportions(0, 10, 0, 10).p_value == 1.0 and two_proportions(0, 0, 1, 1) is None


def test_percentiles_are_nearest_rank():
    xs = list(range(1, 101))
    assert percentile(xs, 50) == 50 and percentile(xs, 95) == 95 and percentile([], 50) is None


def test_assignment_is_sticky_and_follows_the_weights():
    variants = [Variant(id="a", weight=90), Variant(id="b", weight=10)]
    assert all(assign("exp1", f"user{i}", variants) == assign("exp1", f"user{i}", variants) for i in range(100))
    counts = collections.Counter(assign("exp1", f"user{i}", variants).id for i in range(10_000))
    assert 8800 < counts["a"] < 9200
    # another experiment reshuffles independently
    other = collections.Counter(assign("exp2", f"user{i}", variants).id == assign("exp1", f"user{i}", variants).id
                                for i in range(1000))
    assert other[False] > 50
    assert {assign("e", s, [Variant(id="a", weight=0), Variant(id="b", weight=1)]).id for s in "xyz"} == {"b"}


def test_verdicts():
    a = Samples(requests=1000, errors=30, latencies_ms=[100.0] * 500 + [200.0] * 500, feedback=[1, 2, 3, 4, 5])
    b = Samples(requests=1000, errors=50, latencies_ms=[100.0] * 500 + [200.0] * 500, feedback=[3, 4, 5, 6, 7])
    v = verdict("a", a, "b", b, alpha=0.05, min_samples=30)
    # feedback p = 0.0805 is not significant; the error rate (p = 0.0225) is: a, with fewer errors, wins
    assert v.winner == "a" and v.summary.startswith("winner: a (error_rate")
    assert [c.metric for c in v.comparisons] == ["mean_feedback", "error_rate", "latency"]
    assert verdict("a", a, "b", b, alpha=0.01, min_samples=30).summary == "not yet significant"
    assert verdict("a", a, "b", b, alpha=0.05, min_samples=5000).winner is None
    r = summarize("a", a)
    assert (r.error_rate, r.latency_p50_ms, r.latency_p95_ms, r.mean_feedback) == (0.03, 100.0, 200.0, 3.0)


def test_contract_and_lifecycle():
    with pytest.raises(ValueError):
        ExperimentSpec(name="exp", model="m", variants=[Variant(id="a", weight=1), Variant(id="a", weight=1)])
    with pytest.raises(ValueError):
        ExperimentSpec(name="exp", model="m", variants=[Variant(id="a", weight=0), Variant(id="b", weight=0)])
    assert "running" in TRANSITIONS["paused"] and TRANSITIONS["stopped"] == frozenset()
