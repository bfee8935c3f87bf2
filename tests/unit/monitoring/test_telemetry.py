"""Telemetry hooks on the real pipeline (the toy tools pillar of test_pipeline) with in-memory OpenTelemetry
exporters: span tree, GenAI attributes, metrics, W3C trace context to upstreams, and no payload or secret unless
the project opted in."""
from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.flags.service import FlagService
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.telemetry.hooks import OtelTelemetry
from shared.telemetry.propagation import install
from shared.telemetry.setup import choose
from shared.usage.log import MemoryUsageSink, UsageLog, UsageRecord
from tests.unit.test_pipeline import NOW, PID, Clock, EchoToolsSpec, Replica, Tool, Upstreams, exchange

SECRET_BITS = ("sk-gw-abc", '"q": 1', '{"args"', "SECRET PROMPT", "SECRET ANSWER")


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[self.reader])
        self.telemetry = OtelTelemetry(tp.get_tracer("t"), mp.get_meter("t"))

    def metrics(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for rm in self.reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = list(m.data.data_points)
        return out


@pytest.fixture
async def world():
    otel = Otel()
    store = MemoryDocumentStore()
    upstreams, seen = Upstreams(), []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return upstreams(request)

    http = install(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    tools = {"echo": Tool("echo", [Replica("a", "http://a/", priority=0), Replica("b", "http://b/", priority=1)])}
    usage = UsageLog(MemoryUsageSink(), flush_seconds=60)
    flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
    enforcer = QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW)
    pipeline = Pipeline(EchoToolsSpec(tools, http), quotas=QuotaBook(Repository(store, Quota), ttl=60,
                                                                    max_stale=600),
                        enforcer=enforcer, breakers=Breakers(clock=Clock()), usage=usage, flags=flags,
                        telemetry=otel.telemetry, clock=Clock())
    yield otel, pipeline, upstreams, seen
    await usage.close()
    await http.aclose()


def all_text(spans) -> str:
    return " ".join(f"{s.name} {dict(s.attributes)} {[e.attributes for e in s.events]}" for s in spans)


async def test_one_span_per_call_with_stage_and_attempt_children_and_trace_context_upstream(world):
    otel, pipeline, upstreams, seen = world
    upstreams.mode["a"] = "busy"  # a 503 on replica a, then failover to b
    response = await pipeline.run(exchange())
    assert response.status_code == 200
    spans = {s.name: s for s in otel.spans.get_finished_spans()}
    call = spans["execute_tool echo"]
    assert {"resolve", "admit", "route", "attempt a", "attempt b"} <= spans.keys()
    assert all(s.context.trace_id == call.context.trace_id for s in spans.values())
    assert spans["attempt a"].parent.span_id == call.context.span_id
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["gen_ai.tool.name"] == "echo" and call.attributes["gateway.failovers"] == 1
    assert call.attributes["gateway.target"] == "b" and call.attributes["gateway.key_id"] == "k1"
    # W3C trace context: each upstream request's parent is its own attempt span
    ids = [f"{spans[n].context.span_id:016x}" for n in ("attempt a", "attempt b")]
    assert [tp.split("-")[1] for tp in seen] == [f"{call.context.trace_id:032x}"] * 2
    assert [tp.split("-")[2] for tp in seen] == ids
    m = otel.metrics()
    assert m["gateway.requests"][0].value == 1 and m["gateway.tool.calls"][0].value == 1
    assert [(p.attributes["gateway.target"], p.value) for p in m["gateway.failovers"]] == [("a", 1)]
    assert m["gateway.overhead"][0].count == 1
    assert not any(bit in all_text(spans.values()) for bit in SECRET_BITS)


async def test_a_failed_call_is_an_error_span_with_its_code(world):
    otel, pipeline, upstreams, _ = world
    with pytest.raises(Exception):
        await pipeline.run(exchange("nope"))
    (span,) = otel.spans.get_finished_spans()[-1:]
    assert span.status.status_code.name == "ERROR" and span.attributes["error.type"] == "tool_not_found"


def models_call(log_payloads: bool) -> tuple[Exchange, UsageRecord]:
    who = Principal(kind="virtual_key", subject="k9", project_id="p1", key_id="k9", key_prefix="sk-gw-abc")
    x = Exchange(Pillar.models, "chat", who, "r1", {"messages": "SECRET PROMPT"}, {"authorization": "Bearer x"},
                 time.perf_counter(), resource="gpt")
    x.status, x.log_payloads = 200, log_payloads
    rec = UsageRecord(request_id="r1", project_id="p1", key_id="k9", key_prefix="sk-gw-abc", operation="chat",
                      resource="gpt", status=200, latency_ms=12.0, overhead_ms=1.5, cost_usd=0.002,
                      prompt="SECRET PROMPT", completion="SECRET ANSWER",
                      attributes={"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 3,
                                  "reasoning_tokens": 2, "cache": "hit", "guardrail": "allow"})
    return x, rec


@pytest.mark.parametrize("opted_in", [False, True])
def test_genai_usage_attributes_and_payloads_only_when_opted_in(opted_in):
    otel = Otel()
    x, rec = models_call(opted_in)
    otel.telemetry.call_started(x)
    otel.telemetry.call_finished(x, rec)
    (span,) = otel.spans.get_finished_spans()
    a = span.attributes
    assert span.name == "chat gpt" and a["gen_ai.request.model"] == "gpt" and a["gen_ai.operation.name"] == "chat"
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (10, 5)
    assert (a["gen_ai.usage.cache_read.input_tokens"], a["gen_ai.usage.reasoning.output_tokens"]) == (3, 2)
    text = all_text([span])
    assert ("SECRET PROMPT" in text) is opted_in and ("SECRET ANSWER" in text) is opted_in
    assert "sk-gw-abc" not in text and "Bearer" not in text
    m = otel.metrics()
    assert m["gateway.cache.hits"][0].value == 1 and m["gateway.cost"][0].value == pytest.approx(0.002)
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in m["gen_ai.client.token.usage"]} == {"input": 10,
                                                                                                  "output": 5}
    assert m["gateway.guardrail.verdicts"][0].attributes["gateway.verdict"] == "allow"


def test_exporter_choice():
    assert choose("auto", "InstrumentationKey=x", {}) == "azure_monitor"
    assert choose("auto", None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == "otlp"
    assert choose("auto", None, {}) == "console"
    assert choose("console", "InstrumentationKey=x", {}) == "console"


def test_job_outcomes_and_breaker_gauge():
    otel = Otel()
    breakers = Breakers()
    from shared.domain.routing import BreakerPolicy

    policy = BreakerPolicy(failure_count=1, trip_seconds=30, min_calls=100)
    breakers.record("p1/m/a", policy, failed=True)
    otel.telemetry.observe_breakers(breakers)
    otel.telemetry.outcome("sync", "failed")
    m = otel.metrics()
    assert {p.attributes["gateway.breaker.state"]: p.value for p in m["gateway.breaker.open"]}["open"] == 1
    assert m["gateway.job.outcomes"][0].attributes == {"gateway.job": "sync", "gateway.outcome": "failed"}


async def test_services_wire_telemetry_only_when_enabled():
    from shared.config import Settings
    from shared.pipeline.telemetry import NoTelemetry
    from shared.services import Services

    assert isinstance(Services(Settings()).telemetry, NoTelemetry)  # default: off
    on = Services(Settings(telemetry_enabled=True, telemetry_exporter="console"))
    assert isinstance(on.telemetry, OtelTelemetry)
    await on.close()  # flushes and shuts the providers down
