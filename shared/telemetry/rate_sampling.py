"""The root decision of the Azure Monitor rate-limited sampler, computed without its per-call costs (issue 12).

Telemetry's default (setup.py `Sampling` without a ratio, and the Azure Monitor distro's own default) keeps at most
N traces per second with `RateLimitedSampler`: an adaptive percentage, and the Application Insights sampling score
of the trace id (DJB2 over its 32 hex digits, so every service sampling the same trace decides alike). Its
`should_sample` costs ~27 µs a call here, 21 µs of it the DJB2 loop (a modulo on Python ints per character). Here
the same hash is one dot product modulo 2^32 (wrapping once at the end is wrapping at each step) and the percentage
still comes from the sampler's own state — so the gateway's decisions and the sample-rate attribute Application
Insights extrapolates counts from are exactly the sampler's (tests compare both)."""
from __future__ import annotations

from operator import mul
from typing import Any

_DJB2_SEED = 5381
_INT32_MAX = 2**31 - 1
_INT32_MIN = -(2**31)


# DJB2 over 32 characters is a polynomial: h = seed·33^32 + Σ c_i·33^(31−i) (mod 2^32), one C-level dot product.
_POWERS = tuple(pow(33, 31 - i, 2**32) for i in range(32))
_SEEDED = _DJB2_SEED * pow(33, 32, 2**32)


def djb2_score(trace_id: int) -> float:
    """Application Insights' sampling score (0–1) of a trace id: `_get_DJB2_sample_score` of its lower-case hex."""
    h = (_SEEDED + sum(map(mul, b"%032x" % trace_id, _POWERS))) & 0xFFFFFFFF
    if h >= 2**31:
        h -= 2**32
    return float(_INT32_MAX if h == _INT32_MIN else abs(h)) / _INT32_MAX


class RootRateLimited:
    """Decides a root call as the rate-limited sampler behind `sampler` would: (sampled, sampler attributes)."""

    __slots__ = ("_percentage", "_key")

    def __init__(self, percentage: Any, key: str) -> None:
        self._percentage, self._key = percentage, key

    @classmethod
    def of(cls, sampler: Any) -> RootRateLimited | None:
        """For `RateLimitedSampler` itself (the distro) or behind the SDK's `ParentBased` (setup.py); else None."""
        from opentelemetry.sdk.trace.sampling import ParentBased
        try:
            from azure.monitor.opentelemetry.exporter._constants import _SAMPLE_RATE_KEY
            from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler
        except ImportError:
            return None
        root = getattr(sampler, "_root", None) if type(sampler) is ParentBased else sampler
        if type(root) is not RateLimitedSampler:
            return None
        percentage = getattr(root, "_sampling_percentage_generator", None)
        return cls(percentage, _SAMPLE_RATE_KEY) if percentage is not None else None

    def decide(self, trace_id: int, attributes: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        pct = self._percentage.get()
        sampled = djb2_score(trace_id) * 100.0 < pct
        return sampled, ({**attributes, self._key: pct} if pct != 100.0 else attributes)
