"""Which calls' traces are kept (shared/telemetry/setup.py `Sampling`): a fixed ratio when TELEMETRY_SAMPLING_RATIO
is set, otherwise at most TELEMETRY_TRACES_PER_SECOND traces per second (default 5, the Azure Monitor distro's own
default) — every trace at low traffic, a bounded export at high traffic; a caller's sampled flag is honoured."""
from __future__ import annotations

import random

from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, ParentBasedTraceIdRatio

from shared.config import Settings
from shared.telemetry.setup import Sampling


def _decide(sampler, parent=None) -> Decision:
    return sampler.should_sample(parent, random.getrandbits(128) or 1, "call").decision


def test_the_default_is_rate_limited_and_a_ratio_when_one_is_set():
    s = Settings()
    assert s.telemetry_sampling_ratio is None and s.telemetry_traces_per_second == 5.0
    assert Sampling(s.telemetry_sampling_ratio, s.telemetry_traces_per_second).azure_monitor_options() == \
        {"traces_per_second": 5.0}
    ratio = Sampling(0.25, 5.0)
    assert ratio.azure_monitor_options() == {"sampling_ratio": 0.25}
    sampler = ratio.sampler()
    assert isinstance(sampler, ParentBasedTraceIdRatio) and sampler._root.rate == 0.25  # noqa: SLF001
    assert Settings(TELEMETRY_SAMPLING_RATIO="1").telemetry_sampling_ratio == 1.0


def test_the_rate_limit_keeps_a_quiet_instances_traces_and_bounds_a_burst():
    sampler = Sampling(None, 5.0).sampler()
    import time
    time.sleep(0.3)  # a quiet instance: the first call after a pause is traced
    assert _decide(sampler) is Decision.RECORD_AND_SAMPLE
    burst = sum(_decide(sampler) is Decision.RECORD_AND_SAMPLE for _ in range(5000))
    assert burst < 500, burst  # thousands of calls in well under a second: a few percent at most, not all


def test_a_callers_sampled_flag_is_honoured_whatever_the_rate():
    sampler = Sampling(None, 0.0).sampler()  # a limit of zero: the gateway starts no trace of its own
    assert _decide(sampler) is Decision.DROP
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(trace.SpanContext(
        trace_id=7, span_id=9, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))))
    assert _decide(sampler, ctx) is Decision.RECORD_AND_SAMPLE
