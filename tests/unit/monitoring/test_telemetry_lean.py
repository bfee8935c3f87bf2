"""The cheap telemetry path (issue 12, telemetry cost): lean spans honour the span-processor contract and export
what the SDK's spans would; caches are bounded and keyed so one resource never reuses another's attributes;
counters summed in process report what synchronous counters did; sampled-out calls still propagate context;
W3C headers formatted directly equal the propagator's."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.propagate import get_global_textmap, inject, set_global_textmap
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, StaticSampler
from opentelemetry.trace import SpanKind, TraceState

from shared.domain.base import Pillar
from shared.pipeline import Exchange
from shared.telemetry.hooks import OtelTelemetry, parent_context
from shared.telemetry.lite import LiteSpan, LiteTracer
from shared.telemetry.metrics import BoundedCache, Sum
from shared.telemetry.propagation import carrier
from tests.unit.monitoring.test_telemetry import Otel, models_call, world  # noqa: F401 - the fixture
from tests.unit.test_pipeline import exchange


class Recorder(SpanProcessor):
    """A processor that uses the whole contract: enriches on start, reads the parent, sees every end."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ending: list[str] = []
        self.parents_seen: list[object] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)
        self.parents_seen.append(dict(trace.get_current_span(parent_context).attributes or {})
                                 if hasattr(trace.get_current_span(parent_context), "attributes") else None)
        span.set_attribute("enriched.on_start", True)

    def _on_ending(self, span) -> None:
        self.ending.append(span.name)


class RateSampler(Sampler):
    """Like Application Insights' sampler: a decision plus an attribute every exported span must carry."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "microsoft.sample_rate": 50.0},
                              TraceState([("az", "1")]))

    def get_description(self) -> str:
        return "rate"


def telemetry(provider: TracerProvider) -> tuple[OtelTelemetry, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    return OtelTelemetry(provider.get_tracer("t"), meter), reader


def shape(spans) -> list[tuple]:
    """What an exporter sees, without ids and times."""
    by_id = {s.context.span_id: s.name for s in spans}
    return sorted((s.name, s.kind.name, by_id.get(s.parent.span_id) if s.parent else None,
                   tuple(sorted(k for k in s.attributes if k != "gateway.request_id")), s.status.status_code.name,
                   s.resource.attributes.get("service.name"), s.instrumentation_scope.name) for s in spans)


class SubclassedTracer(Tracer):
    """Not the SDK's own class: takes the regular `start_span` path."""


async def test_lean_spans_export_what_the_sdk_spans_would(world):
    otel, pipeline, upstreams, seen = world
    await pipeline.run(exchange())
    lean = otel.spans.get_finished_spans()
    assert isinstance(otel.telemetry._lite, LiteTracer)
    # the same call through the SDK's own spans: a tracer the lean path does not take
    provider = TracerProvider()
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    base = provider.get_tracer("t")
    sdk_tracer = SubclassedTracer(base.sampler, base.resource, base.span_processor, base.id_generator,
                                  base.instrumentation_info, base._span_limits, base._instrumentation_scope)
    assert LiteTracer.of(sdk_tracer) is None
    pipeline._telemetry = OtelTelemetry(sdk_tracer, MeterProvider().get_meter("t"))
    await pipeline.run(exchange())
    assert shape(lean) == shape(exported.get_finished_spans())
    assert len(lean) == 5  # call, resolve, admit, route, attempt a


def test_processors_get_the_live_span_on_start_and_the_readable_one_on_end():
    provider = TracerProvider(sampler=RateSampler(), span_limits=SpanLimits(max_span_attribute_length=12))
    recorder, exported = Recorder(), InMemorySpanExporter()
    provider.add_span_processor(recorder)
    provider.add_span_processor(SimpleSpanProcessor(exported))
    t, _ = telemetry(provider)
    x, rec = models_call(True)
    t.call_started(x)
    with t.span(x, "attempt", target="east"):
        pass
    t.call_finished(x, rec)
    spans = {s.name: s for s in exported.get_finished_spans()}
    call, attempt = spans["chat gpt"], spans["attempt east"]
    assert recorder.started == ["chat", "attempt east"] and set(recorder.ending) == {"chat gpt", "attempt east"}
    assert recorder.parents_seen[1]["gateway.pillar"] == "models"  # the child's on_start reads its live parent
    for s in (call, attempt):
        assert s.attributes["enriched.on_start"] is True
        assert s.attributes["microsoft.sample_rate"] == 50.0  # the sampler's attributes on every span
        assert s.context.trace_state.get("az") == "1"
    assert attempt.parent.span_id == call.context.span_id and attempt.kind == SpanKind.CLIENT
    assert call.kind == SpanKind.SERVER and call.resource is provider.resource
    assert call.attributes["gen_ai.input.messages"] == "SECRET PROMP"  # the provider's value-length limit


def test_a_failing_stage_is_an_error_span_with_the_type_only():
    t, _ = telemetry(_provider(exported := InMemorySpanExporter()))
    x, rec = models_call(False)
    t.call_started(x)
    with pytest.raises(ValueError):
        with t.span(x, "guardrails"):
            raise ValueError("upstream said: SECRET ANSWER")
    t.call_finished(x, rec)
    (step,) = [s for s in exported.get_finished_spans() if s.name == "guardrails"]
    assert step.status.status_code.name == "ERROR" and step.status.description == "ValueError"
    assert "SECRET" not in str(step.attributes) + str(step.events)


def test_lean_span_api_checks_values_like_the_sdk():
    t, _ = telemetry(_provider(exported := InMemorySpanExporter()))
    x, _rec = models_call(False)
    t.call_started(x)
    span = x.scratch["otel.span"]
    assert isinstance(span, LiteSpan)
    span.set_attribute("ok.list", ["a", "b"])
    span.set_attribute("bad.mixed", ["a", 1])
    span.set_attribute("bad.object", object())
    span.set_status(trace.StatusCode.OK)
    span.set_status(trace.StatusCode.ERROR)  # OK is final, as in the SDK
    span.record_exception(RuntimeError("SECRET"))
    span.end()
    span.set_attribute("late", 1)  # ended: ignored
    (out,) = exported.get_finished_spans()
    assert out.attributes["ok.list"] == ("a", "b") and "bad.mixed" not in out.attributes
    assert "bad.object" not in out.attributes and "late" not in out.attributes
    assert out.status.status_code.name == "OK"
    assert [e.attributes["exception.type"] for e in out.events] == ["RuntimeError"] and "SECRET" not in str(out.events)


async def test_a_sampled_out_call_exports_nothing_but_still_propagates_its_trace_id(world):
    otel, pipeline, upstreams, seen = world
    provider = TracerProvider(sampler=ParentBased(StaticSampler(Decision.DROP)))
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    t, reader = telemetry(provider)
    pipeline._telemetry = t
    x = exchange()
    await pipeline.run(x)
    assert exported.get_finished_spans() == ()
    (tp,) = seen
    assert int(tp.split("-")[1], 16) != 0 and int(tp.split("-")[2], 16) != 0  # the call's (unrecorded) ids
    assert int(tp.split("-")[3], 16) & 1 == 0  # not sampled: the upstream does not record either
    metrics = {m.name: m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics}
    assert metrics["gateway.requests"].data.data_points[0].value == 1  # metrics stay complete


def test_a_root_call_ignores_the_current_span_and_a_caller_traceparent_parents_it():
    provider = _provider(exported := InMemorySpanExporter())
    t, _ = telemetry(provider)
    outer = provider.get_tracer("host").start_span("host span")
    token = context.attach(trace.set_span_in_context(outer))
    try:
        x, rec = models_call(False)
        t.call_started(x)
        t.call_finished(x, rec)
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        y, rec = models_call(False)
        y.headers = {"traceparent": tp}
        t.call_started(y)
        t.call_finished(y, rec)
    finally:
        context.detach(token)
    first, second = exported.get_finished_spans()
    assert first.parent is None  # as with the propagator's empty context: the call is its trace's root
    assert f"{second.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert f"{second.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert parent_context({"Other": "x"}) is parent_context({})


def test_bounded_cache_starts_over_at_its_limit_and_never_mixes_keys():
    cache = BoundedCache(limit=3)
    built = []
    for key in ("a", "b", "c", "a"):
        cache.get(key, lambda key=key: built.append(key) or {"name": key})
    assert built == ["a", "b", "c"] and len(cache) == 3
    assert cache.get("d", lambda: {"name": "d"}) == {"name": "d"} and len(cache) == 1  # full: starts over
    assert cache.get("a", lambda: {"name": "a2"}) == {"name": "a2"}


def test_per_resource_span_attributes_are_never_reused_across_models_or_targets():
    t, _ = telemetry(_provider(exported := InMemorySpanExporter()))
    calls = [("gpt", "east", "azure_openai"), ("gpt-4o", "east", "azure_openai"), ("gpt", "west", "openai"),
             ("gpt", "east", "azure_openai")]
    for model, target, kind in calls:
        x, rec = models_call(False)
        x.resource = model
        x.outcome = SimpleNamespace(target=SimpleNamespace(id=target, kind=SimpleNamespace(value=kind)))
        t.call_started(x)
        t.call_finished(x, rec)
    got = [(s.name, s.attributes["gen_ai.request.model"], s.attributes["gateway.target"],
            s.attributes["gen_ai.provider.name"]) for s in exported.get_finished_spans()]
    assert got == [("chat gpt", "gpt", "east", "azure.ai.openai"), ("chat gpt-4o", "gpt-4o", "east", "azure.ai.openai"),
                   ("chat gpt", "gpt", "west", "openai"), ("chat gpt", "gpt", "east", "azure.ai.openai")]
    assert len(t._static) == 3


def test_metric_series_per_resource_and_unregistered_names_share_one_series():
    otel = Otel()
    for model in ("gpt", "gpt-4o", "gpt"):
        x, rec = models_call(False)
        x.resource, x.entity = model, object()
        otel.telemetry.call_finished(x, rec)
    for name in ("nope-1", "nope-2"):  # a name that resolved to nothing: a client cannot mint series
        x = Exchange(Pillar.tools, "tools/call", models_call(False)[0].principal, "r", {}, {}, time.perf_counter(),
                     resource=name)
        x.status, x.error_code = 404, "tool_not_found"
        otel.telemetry.call_finished(x, None)
    m = otel.metrics()
    requests = {p.attributes["gateway.resource"]: p.value for p in m["gateway.requests"]}
    assert requests == {"gpt": 2, "gpt-4o": 1, "-": 2}
    durations = {p.attributes["gateway.resource"]: p.count for p in m["gen_ai.client.operation.duration"]}
    assert durations == {"gpt": 2, "gpt-4o": 1}
    tokens = {(p.attributes["gateway.resource"], p.attributes["gen_ai.token.type"]): p.sum
              for p in m["gen_ai.client.token.usage"]}
    assert tokens == {("gpt", "input"): 20, ("gpt", "output"): 10, ("gpt-4o", "input"): 10, ("gpt-4o", "output"): 5}
    assert "gateway.latency" not in m  # the same value as gen_ai.client.operation.duration, not recorded twice


def test_sums_fold_into_one_overflow_series_past_their_limit():
    total = Sum(limit=2)
    for key in ("a", "b", "c", "d", "a"):
        total.add(key, {"k": key})
    got = {tuple(sorted(o.attributes.items())): o.value for o in total.observe()}
    assert got == {(("k", "a"),): 2, (("k", "b"),): 1, (("otel.metric.overflow", True),): 2}


@pytest.mark.parametrize("state", [None, TraceState([("vendor", "x"), ("az", "1")])])
@pytest.mark.parametrize("sampled", [True, False])
def test_trace_headers_equal_the_propagators_output(state, sampled):
    provider = TracerProvider(sampler=ParentBased(StaticSampler(Decision.RECORD_AND_SAMPLE if sampled
                                                                else Decision.DROP)))
    parent = trace.NonRecordingSpan(trace.SpanContext(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, True,
                                                      trace.TraceFlags(1 if sampled else 0), state))
    span = provider.get_tracer("t").start_span("s", context=trace.set_span_in_context(parent))
    ctx = trace.set_span_in_context(span)
    token = context.attach(baggage.set_baggage("tenant", "t1", ctx))
    try:
        expected: dict[str, str] = {}
        inject(expected)
        assert carrier() == expected and "traceparent" in expected and "baggage" in expected
    finally:
        context.detach(token)
    assert carrier() == {}  # nothing current: nothing sent


def test_other_global_propagators_go_through_inject():
    from opentelemetry.propagators.textmap import TextMapPropagator

    class Custom(TextMapPropagator):
        def inject(self, carrier, context=None, setter=None):
            carrier["x-custom-trace"] = "1"

        def extract(self, carrier, context=None, getter=None):
            return context

        @property
        def fields(self):
            return {"x-custom-trace"}

    before = get_global_textmap()
    set_global_textmap(Custom())
    try:
        assert carrier() == {"x-custom-trace": "1"}
    finally:
        set_global_textmap(before)


def _provider(exported: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider



def test_the_hook_offers_its_headers_to_senders_without_an_httpx_request():
    from shared.telemetry.propagation import inject_trace_context

    provider = _provider(InMemorySpanExporter())
    span = provider.get_tracer("t").start_span("s")
    token = context.attach(trace.set_span_in_context(span))
    try:
        assert inject_trace_context.headers() == carrier()
        assert inject_trace_context.headers()["traceparent"].split("-")[2] == f"{span.get_span_context().span_id:016x}"
    finally:
        context.detach(token)


def test_exporters_encode_lean_spans():
    """OTLP (protobuf), the console's JSON and Application Insights envelopes read what the SDK spans offer."""
    from azure.monitor.opentelemetry.exporter.export.trace import _exporter as azure
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    t, _ = telemetry(_provider(exported := InMemorySpanExporter()))
    x, rec = models_call(False)
    t.call_started(x)
    with t.span(x, "attempt", target="east"):
        pass
    t.call_finished(x, rec)
    spans = exported.get_finished_spans()
    decoded = encode_spans(spans).resource_spans[0].scope_spans[0].spans
    assert {s.name for s in decoded} == {"chat gpt", "attempt east"}
    assert all(s.to_json() for s in spans)
    exporter = azure.AzureMonitorTraceExporter(
        connection_string="InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9")
    envelopes = {e.name.rsplit(".", 1)[-1]: e for e in (exporter._span_to_envelope(s) for s in spans)}
    assert envelopes["Request"].data.base_data.properties["gen_ai.request.model"] == "gpt"
    assert envelopes["RemoteDependency"].data.base_data.properties["gateway.target"] == "east"
