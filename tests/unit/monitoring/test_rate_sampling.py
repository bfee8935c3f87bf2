"""The lean root decision for the rate-limited sampler (shared/telemetry/rate_sampling.py): the Application Insights
score equals the exporter's own for every trace id tried, and a root call's decision, flags and sample-rate attribute
equal `RateLimitedSampler.should_sample`'s for the same percentage — behind the SDK's ParentBased (setup.py) and bare
(the Azure Monitor distro's provider); sampled children inherit the sample rate."""
from __future__ import annotations

import random

import pytest
from azure.monitor.opentelemetry.exporter._constants import _SAMPLE_RATE_KEY
from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler
from azure.monitor.opentelemetry.exporter.export.trace._utils import _get_DJB2_sample_score
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, format_trace_id

from shared.telemetry.lite import LiteTracer
from shared.telemetry.rate_sampling import RootRateLimited, djb2_score
from tests.unit.monitoring.test_lite_sampling import ReplayIds


def test_the_score_is_application_insights_own():
    rng = random.Random(11)
    ids = [0, 1, 2**64, 2**128 - 1, *(rng.getrandbits(128) for _ in range(5000))]
    for trace_id in ids:
        assert djb2_score(trace_id) == _get_DJB2_sample_score(format_trace_id(trace_id).lower()), trace_id


class Fixed:
    """A percentage generator replaying given values (the real one depends on the clock)."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def get(self) -> float:
        return self.values.pop()


@pytest.mark.parametrize("parent_based", [True, False])
def test_root_decisions_and_attributes_equal_the_samplers(parent_based):
    rng = random.Random(5)
    ids = [rng.getrandbits(128) or 1 for _ in range(400)]
    pcts = [rng.choice([100.0, 50.0, 12.5, 0.5, 0.0]) for _ in ids]
    reference = RateLimitedSampler(5.0)
    reference._sampling_percentage_generator = Fixed(list(pcts))  # noqa: SLF001
    ours = RateLimitedSampler(5.0)
    ours._sampling_percentage_generator = Fixed(list(pcts))  # noqa: SLF001
    sampler = ParentBased(ours) if parent_based else ours
    lite = LiteTracer(TracerProvider(sampler=sampler, id_generator=ReplayIds(ids)).get_tracer("t"))
    assert lite.root_bound is None and lite.root_rate is not None
    sampled = 0
    for trace_id in reversed(ids):
        want = reference.should_sample(Context(), trace_id, "call", SpanKind.SERVER, {"a": 1})
        span = lite.start_call("call", Context(), SpanKind.SERVER, {"a": 1})
        sc = span.get_span_context()
        assert sc.trace_id == trace_id and sc.trace_flags.sampled == want.decision.is_sampled()
        assert span.is_recording() == want.decision.is_recording()
        if span.is_recording():
            sampled += 1
            assert dict(span.attributes) == dict(want.attributes)
            child = lite.start_child(span, Context(), "attempt", SpanKind.CLIENT, {"b": 2})
            if _SAMPLE_RATE_KEY in want.attributes:  # the rate travels to every child (Application Insights)
                assert child.attributes[_SAMPLE_RATE_KEY] == want.attributes[_SAMPLE_RATE_KEY]
            child.end()
            span.end()
    assert 0 < sampled < len(ids)


def test_only_the_rate_limited_sampler_gets_the_lean_decision():
    assert RootRateLimited.of(ParentBased(TraceIdRatioBased(0.5))) is None
    assert RootRateLimited.of(TraceIdRatioBased(0.5)) is None

    class Custom(RateLimitedSampler):
        pass

    assert RootRateLimited.of(Custom(5.0)) is None and RootRateLimited.of(ParentBased(Custom(5.0))) is None
