"""The lean tracer decides a root call's sampling itself for the SDK's parent-based ratio sampler (lite.py
`root_ratio_bound`): the same decision, flags and attributes as the sampler, for any trace id and ratio."""
from __future__ import annotations

import random

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (ALWAYS_ON, ParentBased, ParentBasedTraceIdRatio, TraceIdRatioBased)
from opentelemetry.trace import SpanKind, TraceFlags

from shared.telemetry.lite import LiteTracer, root_ratio_bound


class ReplayIds(RandomIdGenerator):
    """Trace ids from a list (edge cases around the ratio's bound), span ids random."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = list(trace_ids)

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop()


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_root_decision_equals_the_samplers(ratio):
    sampler = ParentBasedTraceIdRatio(ratio)
    bound = TraceIdRatioBased.get_bound_for_rate(ratio)
    rng = random.Random(7)
    ids = [rng.getrandbits(128) or 1 for _ in range(500)]
    ids += [(rng.getrandbits(64) << 64) | b for b in (max(bound - 1, 1), bound, bound + 1) if 0 < b < 1 << 64]
    provider = TracerProvider(sampler=sampler, id_generator=ReplayIds(ids))
    lite = LiteTracer(provider.get_tracer("t"))
    assert lite.root_bound == bound
    for trace_id in reversed(ids):
        want = sampler.should_sample(Context(), trace_id, "call", SpanKind.SERVER, {"a": 1})
        span = lite.start_call("call", Context(), SpanKind.SERVER, {"a": 1})
        sc = span.get_span_context()
        assert sc.trace_id == trace_id
        assert sc.trace_flags.sampled == want.decision.is_sampled()
        assert span.is_recording() == want.decision.is_recording()
        assert sc.trace_flags & TraceFlags.RANDOM_TRACE_ID  # the random id generator's flag, as the SDK sets it
        assert not sc.trace_state
        if span.is_recording():
            assert dict(span.attributes) == dict(want.attributes) == {"a": 1}
            span.end()


def test_other_samplers_decide_themselves():
    assert root_ratio_bound(ParentBased(ALWAYS_ON)) is None
    assert root_ratio_bound(TraceIdRatioBased(0.5)) is None  # not parent-based: children would be re-sampled

    class Custom(ParentBasedTraceIdRatio):
        pass

    assert root_ratio_bound(Custom(0.5)) is None
