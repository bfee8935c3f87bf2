"""The statistics behind an A/B verdict, without scipy: Welch's t-test (unequal variances) for means such as
feedback scores and latency, a two-proportion z-test for error rates, and nearest-rank percentiles.

Student's t distribution: two-sided p = I_x(df/2, 1/2) with x = df / (df + t²), the regularized incomplete beta
function evaluated by its continued fraction (Lentz's method, as in Numerical Recipes §6.4)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def _betacf(a: float, b: float, x: float, iterations: int = 300, eps: float = 3e-16) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, iterations + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    if not math.isfinite(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    df: float | None = None


def mean_var(xs: Sequence[float]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    return mean, sum((x - mean) ** 2 for x in xs) / (n - 1)


def welch(a: Sequence[float], b: Sequence[float]) -> TestResult | None:
    """None when either side has fewer than 2 samples; p = 1 when both have no variance and equal means."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    sa, sb = va / len(a), vb / len(b)
    if sa + sb == 0:
        return TestResult(0.0 if ma == mb else math.copysign(math.inf, ma - mb), 1.0 if ma == mb else 0.0)
    t = (ma - mb) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / ((sa * sa / (len(a) - 1) if sa else 0.0) + (sb * sb / (len(b) - 1) if sb else 0.0))
    return TestResult(t, t_two_sided_p(t, df), df)


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> TestResult | None:
    """Pooled two-proportion z-test of x1/n1 against x2/n2."""
    if n1 < 1 or n2 < 1:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return TestResult(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / se
    return TestResult(z, normal_two_sided_p(z))


def percentile(xs: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    if not xs:
        return None
    ordered = sorted(xs)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
