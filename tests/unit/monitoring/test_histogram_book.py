"""In-process histograms (shared/telemetry/histograms.py) export exactly what the SDK's own Histogram instrument
exports for the same records: both temporalities, several attribute sets, bucket edges, empty delta collections,
several readers, bounded series, concurrent export."""
from __future__ import annotations

import sys
import threading

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

from shared.telemetry.histograms import DEFAULT_BOUNDARIES, OVERFLOW, HistogramBook
from shared.telemetry.metrics import DURATION_BUCKETS, GatewayMetrics

DELTA = {Histogram: AggregationTemporality.DELTA}
A = {"gateway.pillar": "models", "gateway.resource": "gpt", "http.response.status_code": 200}
B = {"gateway.pillar": "tools", "gateway.resource": "echo", "http.response.status_code": 502, "error.type": "x"}
C = {"gateway.pillar": "agents"}
# values on, just above and just below bucket edges (upper bounds inclusive), below the first and above the last
EDGE_VALUES = [0, 0.0, -1.5, float("nan"), float("inf"), 5, 5.000001, 4.999999, 10, 10000, 10000.5, 1e9, 7.25, 250, 0.01, 0.02, 81.92, 100.0]


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {m.name: sorted(m.data.data_points, key=lambda p: sorted(p.attributes.items()))
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def comparable(found: dict[str, list]) -> dict[str, list]:
    return {name: [(dict(p.attributes), p.count, p.sum, tuple(p.bucket_counts), tuple(p.explicit_bounds), p.min,
                    p.max) for p in pts] for name, pts in found.items()}


def pair(temporality: dict | None, bounds=None):
    """The SDK's instrument and the book's, each on its own provider with one in-memory reader."""
    sdk_reader, book_reader = InMemoryMetricReader(temporality), InMemoryMetricReader(temporality)
    sdk = MeterProvider(metric_readers=[sdk_reader]).get_meter("gateway").create_histogram(
        "h", unit="s", description="d", explicit_bucket_boundaries_advisory=bounds)
    book = HistogramBook(100)
    assert book.attach(MeterProvider(metric_readers=[book_reader]).get_meter("gateway"))
    mine = book.histogram("h", "s", "d", bounds)
    return sdk, sdk_reader, mine, book_reader


@pytest.mark.parametrize("temporality", [None, DELTA], ids=["cumulative", "delta"])
@pytest.mark.parametrize("bounds", [None, DURATION_BUCKETS], ids=["default", "genai-advisory"])
def test_points_equal_the_sdk_instruments(temporality, bounds):
    sdk, sdk_reader, mine, book_reader = pair(temporality, bounds)
    rounds = [[(v, A) for v in EDGE_VALUES] + [(3, B), (12, B)], [(0.5, C)], [], [(2, A), (20000, B)], []]
    for records in rounds:
        for value, attrs in records:
            sdk.record(value, attrs)
            mine.record(value, tuple(sorted(attrs.items())), attrs)
        want, got = points(sdk_reader), points(book_reader)
        assert comparable(got) == comparable(want)
        if temporality is None or records:
            assert got  # cumulative repeats everything; delta only what is new
        else:
            assert got == {} == want  # a delta collection after no records exports nothing
    assert (mine.bounds == DEFAULT_BOUNDARIES) == (bounds is None)


def test_timestamps_follow_the_sdk_rules():
    for temporality in (None, DELTA):
        sdk, sdk_reader, mine, book_reader = pair(temporality)
        found = []
        for reader, record in ((sdk_reader, lambda v: sdk.record(v, A)),
                               (book_reader, lambda v: mine.record(v, "a", A))):
            record(1)
            [first] = points(reader)["h"]
            points(reader)  # a collection with no record
            record(2)
            [second] = points(reader)["h"]
            found.append((first, second))
        for first, second in found:
            assert first.start_time_unix_nano <= first.time_unix_nano < second.time_unix_nano
            if temporality is None:
                assert second.start_time_unix_nano == first.start_time_unix_nano
            else:  # starts at the previous collection, including the empty one in between
                assert first.time_unix_nano < second.start_time_unix_nano < second.time_unix_nano


def test_each_reader_gets_its_own_temporality():
    cumulative, delta = InMemoryMetricReader(), InMemoryMetricReader(DELTA)
    book = HistogramBook(100)
    assert book.attach(MeterProvider(metric_readers=[cumulative, delta]).get_meter("gateway"))
    h = book.histogram("h", "ms")
    h.record(1, "a", A)
    assert points(delta)["h"][0].count == 1
    h.record(2, "a", A)
    [cum] = points(cumulative)["h"]
    assert (cum.count, cum.sum, cum.min, cum.max) == (2, 3, 1, 2)
    [d] = points(delta)["h"]
    assert (d.count, d.sum) == (1, 2)
    assert points(delta) == {}
    assert points(cumulative)["h"][0].count == 2


def test_series_are_bounded_with_an_overflow_series():
    reader = InMemoryMetricReader()
    book = HistogramBook(3)
    assert book.attach(MeterProvider(metric_readers=[reader]).get_meter("gateway"))
    h = book.histogram("h", "ms")
    for i in range(10):
        h.record(i, i, {"n": i})
    found = points(reader)["h"]
    assert len(found) == 4
    overflow = [p for p in found if dict(p.attributes) == dict(OVERFLOW)]
    assert overflow and overflow[0].count == 7 and overflow[0].sum == sum(range(3, 10))
    for i in range(10, 20):  # later collections stay bounded too
        h.record(i, i, {"n": i})
    assert len(points(reader)["h"]) == 4
    assert sum(p.count for p in points(reader)["h"]) == 20


def test_concurrent_export_loses_and_duplicates_nothing():
    delta, cumulative = InMemoryMetricReader(DELTA), InMemoryMetricReader()
    book = HistogramBook(100)
    assert book.attach(MeterProvider(metric_readers=[delta, cumulative]).get_meter("gateway"))
    h = book.histogram("h", "ms")
    n, exported, done = 20000, [], threading.Event()

    def export() -> None:
        while not done.is_set():
            exported.extend(p.count for p in points(delta).get("h", []))

    t = threading.Thread(target=export)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a record interleaves with the swap
    try:
        t.start()
        for i in range(n):
            h.record(1.0, i % 3, (A, B, C)[i % 3])
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(interval)
    exported.extend(p.count for p in points(delta).get("h", []))
    assert sum(exported) == n
    assert sum(p.count for p in points(cumulative)["h"]) == n


def test_views_fall_back_to_the_sdk_instruments():
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader], views=[View(instrument_name="gateway.overhead",
                                                               attribute_keys=set())]).get_meter("gateway")
    metrics = GatewayMetrics(meter)
    metrics.overhead.record(3.0, "k", A)
    [p] = points(reader)["gateway.overhead"]
    assert p.count == 1 and dict(p.attributes) == {}  # the view applied: the SDK aggregated it


def test_not_the_sdk_meter_is_declined():
    from opentelemetry.metrics import NoOpMeter

    assert not HistogramBook(10).attach(NoOpMeter("x"))


def test_azure_monitor_reader_gets_delta_points():
    """The Azure Monitor exporter asks for delta histograms: its reader gets this interval's records only."""
    from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter
    from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader

    class Captured(AzureMonitorMetricExporter):  # the real exporter's preferences; export kept here, not sent
        def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
            sent.append(metrics_data)
            return MetricExportResult.SUCCESS

    sent: list = []
    exporter = Captured(connection_string="InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                          "IngestionEndpoint=http://127.0.0.1:9/")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=10**9)
    provider = MeterProvider(metric_readers=[reader])
    metrics = GatewayMetrics(provider.get_meter("ai-gateway"))
    for value in (0.05, 0.3):
        metrics.duration.record(value, "k", A)
        provider.force_flush()
    hists = [m for data in sent for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
             if m.name == "gen_ai.client.operation.duration"]
    assert [m.data.aggregation_temporality for m in hists] == [AggregationTemporality.DELTA] * 2
    assert [(p.count, p.sum) for m in hists for p in m.data.data_points] == [(1, 0.05), (1, 0.3)]
    assert hists[0].data.data_points[0].explicit_bounds == DURATION_BUCKETS
    provider.shutdown()


def test_a_failing_merge_keeps_the_sdks_own_metrics(monkeypatch, caplog):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = GatewayMetrics(provider.get_meter("gateway"))
    metrics.outcome("sync", "ok")
    metrics.duration.record(0.1, "k", A)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(metrics.histograms, "collect", broken)
    found = points(reader)
    assert "gateway.job.outcomes" in found and "gen_ai.client.operation.duration" not in found
    assert "not exported this interval" in caplog.text
