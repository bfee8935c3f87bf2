"""Histograms aggregated in process, exported by the meter provider's own readers (issue 12: telemetry cost).

The SDK's synchronous `Histogram.record` costs ~16–25 µs per value (measurement object, attribute copy and hash,
exemplar filter, two locks); a governed call records two to four. Here a record is a bisect into the instrument's
explicit bucket boundaries and four field updates on the series' state, under one uncontended lock (~1–2 µs).

Export: every reader registered on the `MeterProvider` (periodic OTLP / Azure Monitor / console, or an in-memory
reader in tests) collects through the callback the provider gave it (`reader._collect`); `attach` wraps that
callback so the points of this book are merged into the `MetricsData` the reader is about to receive, in the
temporality *that reader* asks for histograms (Azure Monitor prefers delta, OTLP defaults to cumulative). The
points are built exactly like the SDK's `_ExplicitBucketHistogramAggregation` (`bisect_left`: a bucket's upper
bound is inclusive; min/max; cumulative start = the series' first record, delta start = the reader's previous
collection). The SDK 1.45 has no public metric-producer hook; when a provider uses views or a reader prefers another
histogram aggregation (exponential), `attach` declines and the caller keeps the SDK's own instruments.

Multiple readers: records land in one `pending` map; a collection by any reader drains it under the lock and folds
it into each reader's own state (cumulative: running totals; delta: what that reader has not exported yet).
Series are bounded per instrument (`limit`), past it values fold into one `otel.metric.overflow` series.
Exemplars are not kept (the SDK's trace-based exemplar is a per-record sampling cost; the request log carries the
trace id of every call).
"""
from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Hashable, Mapping, Sequence
from time import time_ns
from typing import Any

log = logging.getLogger("gateway.telemetry")
OVERFLOW_KEY = "otel.metric.overflow"
OVERFLOW: Mapping[str, Any] = {"otel.metric.overflow": True}
# The SDK's default explicit boundaries (used when an instrument has no advisory boundaries).
DEFAULT_BOUNDARIES: tuple[float, ...] = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                                         2500.0, 5000.0, 7500.0, 10000.0)


class _State:
    """One series' aggregation: the same fields as the SDK's explicit-bucket histogram aggregation."""

    __slots__ = ("attrs", "start", "count", "sum", "min", "max", "buckets")

    def __init__(self, attrs: Mapping[str, Any], start: int, width: int) -> None:
        self.attrs, self.start = attrs, start
        self.count, self.sum, self.min, self.max = 0, 0, math.inf, -math.inf
        self.buckets = [0] * width

    def fold(self, other: _State) -> None:
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


class Hist:
    """A histogram instrument whose series live here; `record` is the hot path."""

    __slots__ = ("name", "unit", "description", "bounds", "_pending", "_lock", "_limit")

    def __init__(self, name: str, unit: str, description: str, bounds: Sequence[float], lock: threading.Lock,
                 limit: int) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(float(b) for b in bounds)
        if any(not math.isfinite(b) for b in self.bounds) or any(a >= b for a, b in zip(self.bounds,
                                                                                           self.bounds[1:])):
            raise ValueError(f"{name}: boundaries must be finite and strictly increasing")
        self._pending: dict[Hashable, _State] = {}
        self._lock = lock
        self._limit = limit

    def record(self, value: float, key: Hashable, attrs: Mapping[str, Any]) -> None:
        """`key` identifies `attrs` (a cached attribute set), so no attribute hashing per record."""
        if not 0 <= value < math.inf:  # what the SDK's Histogram.record refuses: negative, infinite, NaN
            log.warning("histogram %s: value %r ignored (not finite and non-negative)", self.name, value)
            return
        with self._lock:
            s = self._pending.get(key)
            if s is None:
                s = self._series(key, attrs)
            s.count += 1
            s.sum += value
            if value < s.min:
                s.min = value
            if value > s.max:
                s.max = value
            s.buckets[bisect_left(self.bounds, value)] += 1

    def _series(self, key: Hashable, attrs: Mapping[str, Any]) -> _State:
        if len(self._pending) >= self._limit:
            key, attrs = OVERFLOW_KEY, OVERFLOW
            s = self._pending.get(key)
            if s is not None:
                return s
        s = self._pending[key] = _State(attrs, time_ns(), len(self.bounds) + 1)
        return s

    def drain(self) -> dict[Hashable, _State]:
        """Called under the records' lock: a swap, so a state is never updated after it was drained."""
        out, self._pending = self._pending, {}
        return out


class _ReaderView:
    """What one reader has been given so far (cumulative) or not yet (delta)."""

    def __init__(self, delta: bool, limit: int, now: int) -> None:
        self.delta = delta
        self.limit = limit
        self.states: dict[str, dict[Hashable, _State]] = {}
        # delta: series this reader has collected before start at its previous collection, like the SDK's
        # `_previous_collection_start_nano` (bounded: forgetting a key only moves its start to its first record)
        self.seen: dict[str, set[Hashable]] = {}
        self.previous = now

    def fold(self, name: str, drained: dict[Hashable, _State]) -> None:
        mine = self.states.setdefault(name, {})
        for key, s in drained.items():
            have = mine.get(key)
            if have is None:
                if len(mine) >= self.limit and key != OVERFLOW_KEY:
                    key = OVERFLOW_KEY
                    have = mine.get(key)
                if have is None:
                    attrs = OVERFLOW if key == OVERFLOW_KEY else s.attrs
                    have = mine[key] = _State(attrs, s.start, len(s.buckets))
            have.fold(s)

    def points(self, hist: Hist, now: int) -> list[Any]:
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        states = self.states.get(hist.name, {})
        seen = self.seen.setdefault(hist.name, set())
        if self.delta:
            self.states[hist.name] = {}
            if len(seen) + len(states) > 4 * self.limit:
                seen.clear()
        points = []
        for key, s in states.items():
            start = s.start
            if self.delta:
                if key in seen:
                    start = self.previous
                seen.add(key)
            points.append(HistogramDataPoint(
                attributes=dict(s.attrs), start_time_unix_nano=start, time_unix_nano=now, count=s.count,
                sum=s.sum, bucket_counts=tuple(s.buckets), explicit_bounds=hist.bounds, min=s.min, max=s.max,
                exemplars=[]))
        return points


class HistogramBook:
    """The gateway's histograms of one meter, and their merge into each reader's collection."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()  # records vs. a collection's swap of their pending maps (O(1) held)
        self._collect_lock = threading.Lock()  # collections (one per reader thread) vs. each other
        self._limit = limit
        self._hists: list[Hist] = []
        self._views: dict[int, _ReaderView] = {}

    def histogram(self, name: str, unit: str, description: str = "",
                  bounds: Sequence[float] | None = None) -> Hist:
        hist = Hist(name, unit, description, DEFAULT_BOUNDARIES if bounds is None else bounds, self._lock,
                    self._limit)
        self._hists.append(hist)
        return hist

    def collect(self, delta: bool, reader_id: int, now: int | None = None) -> list[Any]:
        """The `Metric`s for one reader's collection (drains pending records into every reader's view)."""
        from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, Metric

        now = time_ns() if now is None else now
        with self._collect_lock:  # folding and building points never hold the records' lock
            view = self._views.get(reader_id)
            if view is None:
                view = self._views[reader_id] = _ReaderView(delta, self._limit, now)
            with self._lock:
                drains = [(hist, hist.drain()) for hist in self._hists]
            for hist, drained in drains:
                if drained:
                    for v in self._views.values():
                        v.fold(hist.name, drained)
            temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
            out = []
            for hist in self._hists:
                points = view.points(hist, now)
                if points:
                    out.append(Metric(name=hist.name, description=hist.description, unit=hist.unit,
                                      data=Histogram(data_points=points, aggregation_temporality=temporality)))
            view.previous = now
            return out

    def attach(self, meter: Any) -> bool:
        """Merge this book into every reader of `meter`'s provider; False (nothing changed) when the provider's
        configuration means the SDK must aggregate (views, a non-explicit-bucket histogram aggregation)."""
        try:
            consumer = meter._measurement_consumer  # noqa: SLF001 — no public producer hook in SDK 1.45
            config, readers = consumer._sdk_config, list(consumer._reader_storages)  # noqa: SLF001
            scope = meter._instrumentation_scope  # noqa: SLF001
        except AttributeError:
            return False  # not the SDK (a no-op or proxy meter): nothing collects, the SDK path is harmless
        if config.views or not all(_explicit(r) for r in readers):
            return False
        for reader in readers:
            self._wrap(reader, config.resource, scope)
        return True

    def _wrap(self, reader: Any, resource: Any, scope: Any) -> None:
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram as SdkHistogram
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        inner = reader._collect  # noqa: SLF001
        delta = reader._instrument_class_temporality[SdkHistogram] is AggregationTemporality.DELTA  # noqa: SLF001
        book = self
        with self._collect_lock:
            self._views[id(reader)] = _ReaderView(delta, self._limit, time_ns())  # sees records from now on

        def collect(r: Any, timeout_millis: float = 10_000) -> Any:
            data = inner(r, timeout_millis=timeout_millis) if inner is not None else None
            try:
                return book.merge(data, book.collect(delta, id(reader)), resource, scope)
            except Exception:  # the SDK's own metrics still go out; the failure is logged, never silent
                log.exception("telemetry: in-process histograms not exported this interval")
                return data

        reader._set_collect_callback(collect)  # noqa: SLF001

    @staticmethod
    def merge(data: Any, metrics: list[Any], resource: Any, scope: Any) -> Any:
        from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics

        if not metrics:
            return data
        if data is None:
            data = MetricsData(resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[],
                                                                 schema_url=resource.schema_url)])
        rm = data.resource_metrics[0]
        for sm in rm.scope_metrics:
            if sm.scope == scope:
                sm.metrics.extend(metrics)
                return data
        rm.scope_metrics.append(ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url))
        return data


def _explicit(reader: Any) -> bool:
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram as SdkHistogram
    from opentelemetry.sdk.metrics.view import DefaultAggregation, ExplicitBucketHistogramAggregation

    aggregation = reader._instrument_class_aggregation.get(SdkHistogram)  # noqa: SLF001
    return aggregation is None or type(aggregation) in (DefaultAggregation, ExplicitBucketHistogramAggregation) \
        and getattr(aggregation, "_boundaries", None) is None
