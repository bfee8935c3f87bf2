"""Telemetry cost per governed call, in process: the real pipeline (toy tools pillar over httpx.MockTransport,
memory quotas and log) run N times with the no-op hooks, then with OpenTelemetry hooks (SDK tracer with a batch
processor into an in-memory exporter, SDK meter) — the CPU the gateway itself spends, no network.

    .venv/bin/python -m bench.telemetry_overhead [calls]
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

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
from shared.telemetry.hooks import OtelTelemetry
from shared.telemetry.propagation import install
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.unit.test_pipeline import NOW, EchoToolsSpec, Replica, Tool, exchange


def build(telemetry):
    store = MemoryDocumentStore()
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"ok": 1})))
    if telemetry is not None:
        install(http)
    tools = {"echo": Tool("echo", [Replica("a", "http://a/")])}
    usage = UsageLog(MemoryUsageSink(), flush_seconds=3600, max_buffer=10**6)
    flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=600, max_stale=600)
    return Pipeline(EchoToolsSpec(tools, http), quotas=QuotaBook(Repository(store, Quota), ttl=600, max_stale=600),
                    enforcer=QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW), breakers=Breakers(),
                    usage=usage, flags=flags, telemetry=telemetry)


async def per_call_us(pipeline, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await pipeline.run(exchange())
        out.append((time.perf_counter() - t) * 1e6)
    return out


async def main(n: int) -> None:
    providers = []

    def otel(ratio: float) -> OtelTelemetry:
        tp = TracerProvider(sampler=ParentBasedTraceIdRatio(ratio))  # what shared/telemetry/setup.py builds
        tp.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=n * 8))
        providers.append(tp)
        meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
        return OtelTelemetry(tp.get_tracer("bench"), meter)

    pipelines = {"off": build(None), "on": build(otel(1.0)), "on, 10% sampled": build(otel(0.1))}
    for p in pipelines.values():
        await per_call_us(p, 200)  # warm-up
    rounds: dict[str, list[float]] = {k: [] for k in pipelines}
    for _ in range(5):  # interleaved rounds: machine noise hits every variant alike
        for name, p in pipelines.items():
            rounds[name] += await per_call_us(p, n // 5)
    base = statistics.median(rounds["off"])
    for name, xs in rounds.items():
        xs.sort()
        med = statistics.median(xs)
        print(f"telemetry {name:16}: median {med:7.1f} µs (+{med - base:6.1f})  p95 {xs[int(len(xs) * .95)]:8.1f} µs"
              f"  ({len(xs)} calls)")
    for tp in providers:
        tp.shutdown()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
