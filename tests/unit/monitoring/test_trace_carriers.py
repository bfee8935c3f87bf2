"""Correlation ids and W3C trace-context carriers (shared/pipeline/correlation.py), the correlation id on the
request-log row with telemetry off, and the telemetry wiring of every pillar (Services)."""
from __future__ import annotations

import pytest

from shared.config import Settings
from shared.pipeline.correlation import (correlation_of, new_correlation, trace_id_of, with_message_metadata,
                                         with_meta)
from shared.services import Services
from tests.unit.monitoring.test_telemetry import Otel, world  # noqa: F401 - the fixture
import httpx

from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.flags.service import FlagService
from shared.pipeline import Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.unit.test_pipeline import NOW, EchoToolsSpec, Replica, Tool, Upstreams, exchange

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value, expected", [
    (TP, TRACE), (TP + "-extra", TRACE),  # a future version may append fields
    (f"ff-{TRACE}-00f067aa0ba902b7-01", None), (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
    (TP.upper(), None), (TP[:-1], None), ("", None), (None, None), (42, None)])
def test_trace_id_of_reads_only_valid_traceparents(value, expected):
    assert trace_id_of(value) == expected


def test_correlation_prefers_the_explicit_header_then_meta_then_the_traceparent_header():
    other = f"00-{'a' * 32}-00f067aa0ba902b7-01"
    assert correlation_of({"x-correlation-id": "order-42", "traceparent": TP}) == "order-42"
    assert correlation_of({"x-correlation-id": "bad id with spaces", "traceparent": TP}) == TRACE
    assert correlation_of({"traceparent": other}, {"traceparent": TP}) == TRACE
    assert correlation_of({"traceparent": TP}, {"other": "x"}) == TRACE
    assert correlation_of({}) is None
    assert correlation_of({"x-correlation-id": "x" * 129}) is None
    assert new_correlation("req-1") == "req-1" and len(new_correlation("bad id")) == 32


@pytest.mark.parametrize("raw, expected", [
    ([(b"x-correlation-id", b"order-42"), (b"traceparent", TP.encode())], "order-42"),
    ([(b"authorization", b"Bearer k"), (b"traceparent", TP.encode())], TRACE),
    ([(b"x-correlation-id", b"bad id"), (b"traceparent", b"garbage")], None),
    ([(b"authorization", b"Bearer k")], None)])
def test_correlation_from_asgi_headers_in_one_pass(raw, expected):
    from starlette.datastructures import Headers

    assert correlation_of(Headers(raw=raw)) == expected
    assert correlation_of(Headers(raw=raw), {"traceparent": f"00-{'b' * 32}-00f067aa0ba902b7-01"}) == (
        expected if expected == "order-42" else "b" * 32)


def test_carriers_replace_the_clients_trace_keys_and_keep_everything_else():
    params = {"name": "t", "_meta": {"traceparent": "client", "progressToken": 3}}
    out = with_meta(params, {"traceparent": TP})
    assert out["_meta"] == {"traceparent": TP, "progressToken": 3} and params["_meta"]["traceparent"] == "client"
    assert with_meta(params, {}) is params  # no active span: nothing changes
    msg = {"message": {"messageId": "m", "metadata": {"k": 1}}, "configuration": {}}
    out = with_message_metadata(msg, {"traceparent": TP, "tracestate": "a=b"})
    assert out["message"]["metadata"] == {"k": 1, "traceparent": TP, "tracestate": "a=b"}
    assert with_message_metadata({"id": "task"}, {"traceparent": TP}) == {"id": "task"}  # GetTask: no message


async def test_the_correlation_id_is_a_log_column_with_telemetry_off():
    store, sink = MemoryDocumentStore(), MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    async with httpx.AsyncClient(transport=httpx.MockTransport(Upstreams())) as http:
        pipeline = Pipeline(EchoToolsSpec({"echo": Tool("echo", [Replica("a", "http://a/")])}, http),
                            quotas=QuotaBook(Repository(store, Quota), ttl=60, max_stale=600),
                            enforcer=QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW), breakers=Breakers(),
                            usage=usage, flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags),
                                                           ttl=60, max_stale=600))  # telemetry: the no-op
        x = exchange()
        x.headers = {"traceparent": TP}
        await pipeline.run(x)
        await pipeline.run(exchange())
    await usage.close()
    first, second = sink.records
    assert first.attributes["correlation_id"] == TRACE and "correlation_id" not in second.attributes


async def test_the_call_span_continues_the_callers_trace(world):  # noqa: F811
    otel, pipeline, _, _ = world
    x = exchange()
    x.headers = {"traceparent": TP}
    await pipeline.run(x)
    call = [s for s in otel.spans.get_finished_spans() if s.name.startswith("execute_tool")][0]
    assert f"{call.context.trace_id:032x}" == TRACE and f"{call.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert call.attributes["gateway.correlation_id"] == TRACE


@pytest.mark.parametrize("enabled", [False, True])
def test_every_pillar_gets_the_telemetry_hooks_only_when_enabled(enabled, monkeypatch):
    services = Services(Settings(TELEMETRY_ENABLED=enabled, TELEMETRY_EXPORTER="console"))
    otel = Otel()
    if enabled:
        services.__dict__["telemetry"] = otel.telemetry  # the providers are setup.py's (tested there)
    deps = services.tools.deps
    assert (deps.trace is not None, deps.instrument is not None) == (enabled, True)
    assert (deps.telemetry() is otel.telemetry) is enabled
