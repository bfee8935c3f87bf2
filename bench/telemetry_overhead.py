"""Telemetry cost per governed call, in process: the real pipeline (toy tools pillar over httpx.MockTransport,
memory quotas and log) run N times with the no-op hooks, then with OpenTelemetry hooks (SDK tracer with a batch
processor into an exporter that counts and drops, SDK meter with a reader collecting as an exporter would) — the CPU the
gateway itself spends, no network. CPU time (`time.process_time`) per call, the variants interleaved call by call.

With `--baseline REV` the hooks of that git revision (`shared/telemetry/hooks.py`, `metrics.py`, `propagation.py`) run as
more variants in the same rounds: a before/after A/B on one machine state.

    .venv/bin/python -m bench.telemetry_overhead [calls] [--baseline main]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import time
from typing import Any

import httpx
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

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


class CountingExporter(SpanExporter):
    """Receives every batch and keeps only a count: an in-memory exporter would keep every span alive, and the
    garbage collector's passes over that growing heap would be charged to telemetry (a real exporter sends and
    drops them; its own serialisation cost is the exporter's, not the gateway's)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def load_revision(rev: str) -> tuple[Any, Any]:
    """The telemetry hooks, metrics and propagation of a git revision, as modules of the `shared.telemetry` package
    (the hooks see that revision's metrics; other modules they import are today's)."""
    import sys

    loaded = {}
    for name in ("propagation", "metrics", "hooks"):
        source = subprocess.run(["git", "show", f"{rev}:shared/telemetry/{name}.py"], check=True,
                                capture_output=True, text=True).stdout
        spec = importlib.util.spec_from_loader(f"shared.telemetry._{name}_at_rev", loader=None)
        module = importlib.util.module_from_spec(spec)
        module.__package__ = "shared.telemetry"
        today = sys.modules.get("shared.telemetry.metrics")
        if name == "hooks":  # `from .metrics import …` resolves to the revision's metrics while it loads
            sys.modules["shared.telemetry.metrics"] = loaded["metrics"]
        try:
            exec(compile(source, f"{rev}:shared/telemetry/{name}.py", "exec"), module.__dict__)
        finally:
            if today is not None:
                sys.modules["shared.telemetry.metrics"] = today
        loaded[name] = module
    return loaded["hooks"].OtelTelemetry, loaded["propagation"].install


def build(telemetry, install=install):
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


async def cpu_per_call_us(pipeline, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        await pipeline.run(exchange())
    return (time.process_time() - t) / n * 1e6


async def main(n: int, baseline: str | None) -> None:
    providers, readers = [], []

    def otel(ratio: float | None, hooks=OtelTelemetry):
        from shared.telemetry.setup import Sampling

        # what shared/telemetry/setup.py builds: a ratio, or (None) the default rate limit of 5 traces/s
        tp = TracerProvider(sampler=Sampling(ratio, 5.0).sampler())
        tp.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=n * 8))
        providers.append(tp)
        reader = InMemoryMetricReader()
        readers.append(reader)
        meter = MeterProvider(metric_readers=[reader]).get_meter("bench")
        return hooks(tp.get_tracer("bench"), meter)

    pipelines = {"off": build(None), "on": build(otel(1.0)), "on, 10% sampled": build(otel(0.1)),
                 "on, default ≤5/s": build(otel(None))}
    if baseline:
        old_hooks, old_install = load_revision(baseline)
        pipelines[f"{baseline}: on"] = build(otel(1.0, old_hooks), old_install)
        pipelines[f"{baseline}: on, 10%"] = build(otel(0.1, old_hooks), old_install)
    for p in pipelines.values():
        await cpu_per_call_us(p, 200)  # warm-up
    # Interleaved call by call (off, on, on 10%, …, off, on, …): a burst of load from elsewhere on the machine hits
    # every variant alike. Per-call CPU medians (the export thread's work lands on whichever call it interrupts:
    # the median leaves it out, the mean keeps it).
    per_call: dict[str, list[float]] = {k: [] for k in pipelines}
    clock = time.process_time
    for i in range(n):
        for name, p in pipelines.items():
            t = clock()
            await p.run(exchange())
            per_call[name].append((clock() - t) * 1e6)
        if i % 1000 == 999:
            for reader in readers:  # an export interval's collection (observable callbacks run here)
                reader.get_metrics_data()
    base = statistics.median(per_call["off"])
    base_mean = statistics.fmean(per_call["off"])
    for name, xs in per_call.items():
        med, mean = statistics.median(xs), statistics.fmean(xs)
        print(f"telemetry {name:20}: median {med:7.1f} µs CPU/call (+{med - base:6.1f}, x{med / base:4.2f})  "
              f"mean {mean:7.1f} (+{mean - base_mean:6.1f})  ({len(xs)} calls)")
    for tp in providers:
        tp.shutdown()


if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("calls", type=int, nargs="?", default=5000)
    args.add_argument("--baseline", help="a git revision whose telemetry hooks run as more variants")
    a = args.parse_args()
    asyncio.run(main(a.calls, a.baseline))
