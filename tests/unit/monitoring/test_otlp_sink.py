"""bench/otlp_sink.py receives what the real OTLP/HTTP exporters send (the harness's TELEMETRY=on|sampled sink)."""
from __future__ import annotations

import gzip
import threading

import httpx
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.otlp_sink import serve
from shared.telemetry.hooks import OtelTelemetry


def test_sink_counts_spans_and_metric_points_from_the_real_exporters():
    server, counts = serve(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                                               export_interval_millis=10**9)
        mp = MeterProvider(metric_readers=[reader])
        metrics = OtelTelemetry(tp.get_tracer("t"), mp.get_meter("t")).metrics
        for name in ("a", "b", "c"):
            with tp.get_tracer("t").start_as_current_span(name):
                pass
        metrics.overhead.record(1.5, "k", {"gateway.pillar": "models"})  # in-process histogram, exported by OTLP
        metrics.outcome("sync", "ok")
        mp.force_flush()
        bad = httpx.post(f"{base}/v1/metrics", content=gzip.compress(b"\xff\xff"),
                         headers={"content-encoding": "gzip"})
        assert httpx.post(f"{base}/v2/other", content=b"").status_code == 404
        tp.shutdown()
        mp.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    got = counts.snapshot()
    assert bad.status_code == 200 and bad.content == b""
    assert got["traces"]["requests"] == 3 and got["traces"]["items"] == 3 and got["traces"]["bytes"] > 0
    assert got["metrics"]["requests"] >= 2 and got["metrics"]["items"] >= 2  # the histogram point + the counter
    assert got["undecodable"] == 1 and got["rejected"] == 1
    assert got["points_by_metric"]["gateway.overhead"] >= 1 and got["points_by_metric"]["gateway.job.outcomes"] >= 1
