"""The gateway's metrics, cheap per call (issue 12: telemetry on must keep the data-plane targets).

Two mechanisms keep a governed call's metric work to a few dict operations:
- counters (requests, tool/agent calls, cost, cache hits, guardrail verdicts, failovers, quota and breaker refusals,
  job outcomes) are summed in process, per attribute set, and reported by observable counters when the reader
  collects (every export interval): same names, same attributes, same monotonic sums as synchronous counters, but
  a call pays a locked dict increment instead of the SDK's measurement path (~25 µs each: attribute cleaning,
  hashing, a lock, exemplar checks);
- the attribute sets themselves are built once per (pillar, operation, resource, status, error) and reused
  (bounded: `SERIES_LIMIT` per map; past it, sums fold into one `otel.metric.overflow` series like the SDK's own
  cardinality limit, and the attribute cache starts over).
Histograms (GenAI duration and token usage, overhead) have no asynchronous form in OpenTelemetry: they are
aggregated in process (`histograms.py`: a bisect into the instrument's explicit buckets under a lock) and merged
into each reader's collection in the temporality that reader asks for; with views or a non-default histogram
aggregation configured they fall back to the SDK's synchronous instruments. The GenAI ones use the semantic
conventions' advisory bucket boundaries. There are as few as the signals need: the call's latency is
`gen_ai.client.operation.duration` (seconds) — the former `gateway.latency` (the same value in milliseconds) is not
recorded twice.

Low-cardinality attributes only: no key, no request id; the resource name is the registered one (a call that named
nothing registered counts under "-", so a client cannot mint series).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from ..domain.base import Pillar
from .histograms import HistogramBook

SERIES_LIMIT = 2000  # the SDK's default cardinality limit per instrument
OVERFLOW: Mapping[str, Any] = {"otel.metric.overflow": True}
QUOTA_CODES = frozenset({"rate_limit_exceeded", "quota_exceeded", "request_exceeds_quota",
                         "backend_capacity_exhausted"})
_TOKEN_TYPES = (("prompt_tokens", "input"), ("completion_tokens", "output"))
# GenAI semantic conventions' advisory explicit bucket boundaries
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


class Sum:
    """A monotonic sum per attribute set, read by an observable counter's callback (another thread: the lock)."""

    __slots__ = ("_values", "_attrs", "_lock", "_limit")

    def __init__(self, limit: int = SERIES_LIMIT) -> None:
        self._values: dict[Hashable, float] = {}
        self._attrs: dict[Hashable, Mapping[str, Any]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, key: Hashable, attrs: Mapping[str, Any], amount: float = 1) -> None:
        with self._lock:
            value = self._values.get(key)
            if value is None:
                if len(self._values) >= self._limit:
                    key, attrs = "otel.metric.overflow", OVERFLOW
                    value = self._values.get(key, 0)
                else:
                    value = 0
                self._attrs[key] = attrs
            self._values[key] = value + amount

    def observe(self, _options: Any = None) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            items = [(self._attrs[k], v) for k, v in self._values.items()]
        return [Observation(v, dict(a)) for a, v in items]


class BoundedCache:
    """Values built once per key; at `limit` keys the map starts over (keys are registered names, so a full map
    means churn, not a working set worth an LRU's per-hit cost)."""

    __slots__ = ("_map", "_limit")

    def __init__(self, limit: int = SERIES_LIMIT) -> None:
        self._map: dict[Hashable, Any] = {}
        self._limit = limit

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        value = self._map.get(key)
        if value is None:
            if len(self._map) >= self._limit:
                self._map.clear()
            value = self._map[key] = build()
        return value

    def __len__(self) -> int:
        return len(self._map)


class _SdkHist:
    """The SDK's synchronous histogram behind `Hist.record`'s signature (the fallback path)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def record(self, value: float, _key: Hashable, attrs: Mapping[str, Any]) -> None:
        self._inner.record(value, attrs)


class GatewayMetrics:
    def __init__(self, meter: Any, limit: int = SERIES_LIMIT) -> None:
        m = meter
        self._meter = m
        # histograms: aggregated here when the provider allows it, else the SDK's synchronous instruments
        self.histograms = HistogramBook(limit)
        hist = self.histograms.histogram if self.histograms.attach(m) else self._sdk_histogram
        self.tokens = hist("gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.",
                           TOKEN_BUCKETS)
        self.duration = hist("gen_ai.client.operation.duration", "s", "GenAI operation duration.",
                             DURATION_BUCKETS)
        self.overhead = hist("gateway.overhead", "ms", "Time not spent upstream.", None)
        # counters: summed here, reported at collection
        self.requests = self._sum("gateway.requests", "{request}", "Governed calls.")
        self.cost = self._sum("gateway.cost", "USD")
        self.cache_hits = self._sum("gateway.cache.hits", "{request}")
        self.guardrail = self._sum("gateway.guardrail.verdicts", "{verdict}")
        self.failovers = self._sum("gateway.failovers", "{failover}")
        self.quota_refusals = self._sum("gateway.quota.refusals", "{request}")
        self.breaker_refusals = self._sum("gateway.breaker.refusals", "{request}")
        self.tool_calls = self._sum("gateway.tool.calls", "{call}")
        self.agent_calls = self._sum("gateway.agent.calls", "{call}")
        self.outcomes = self._sum("gateway.job.outcomes", "{outcome}", "Queue messages and sync runs by outcome.")
        self._dims = BoundedCache(limit)  # (pillar, op, resource, status, error) -> attribute set
        self._derived = BoundedCache(limit)  # (dims key, attribute, value) -> attribute set
        self._limit = limit

    def _sum(self, name: str, unit: str, description: str = "") -> Sum:
        total = Sum(SERIES_LIMIT)
        self._meter.create_observable_counter(name, callbacks=[total.observe], unit=unit, description=description)
        return total

    def _sdk_histogram(self, name: str, unit: str, description: str, bounds: Any) -> _SdkHist:
        return _SdkHist(self._meter.create_histogram(name, unit=unit, description=description,
                                                     explicit_bucket_boundaries_advisory=bounds))

    def dims(self, key: tuple[Any, ...]) -> Mapping[str, Any]:
        return self._dims.get(key, lambda: _dims(*key))

    def _with(self, key: tuple[Any, ...], dims: Mapping[str, Any], name: str, value: str) -> Mapping[str, Any]:
        return self._derived.get((key, name, value), lambda: {**dims, name: value})

    def measure(self, x: Any, record: Any, attrs: Mapping[str, Any], op: str) -> None:
        resource = x.resource if x.entity is not None and x.resource else "-"
        key = (x.pillar, op, resource, x.status, x.error_code)
        dims = self.dims(key)
        self.requests.add(key, dims)
        if x.pillar == Pillar.tools:
            self.tool_calls.add(key, dims)
        elif x.pillar == Pillar.agents:
            self.agent_calls.add(key, dims)
        if x.status == 429 and x.error_code in QUOTA_CODES:
            self.quota_refusals.add(key, dims)
        if x.error_code == "no_backend_available":
            self.breaker_refusals.add(key, dims)
        if record is None:
            return
        self.duration.record(record.latency_ms / 1000, key, dims)
        self.overhead.record(record.overhead_ms, key, dims)
        for src, kind in _TOKEN_TYPES:
            count = attrs.get(src)
            if isinstance(count, int):
                self.tokens.record(count, (key, kind), self._with(key, dims, "gen_ai.token.type", kind))
        if record.cost_usd:
            self.cost.add(key, dims, record.cost_usd)
        if attrs.get("cache") == "hit":
            self.cache_hits.add(key, dims)
        verdict = attrs.get("guardrail")
        if isinstance(verdict, str):
            self.guardrail.add((key, verdict), self._with(key, dims, "gateway.verdict", verdict))
        if record.failovers:
            for attempt in record.attempts[:-1]:
                target = str(attempt.get("target"))
                self.failovers.add((key, target), self._with(key, dims, "gateway.target", target))

    def outcome(self, job: str, outcome: str) -> None:
        self.outcomes.add((job, outcome), {"gateway.job": job, "gateway.outcome": outcome})


def _dims(pillar: Pillar, op: str, resource: str, status: int, error_code: str | None) -> Mapping[str, Any]:
    dims: dict[str, Any] = {"gateway.pillar": pillar.value, "gen_ai.operation.name": op,
                            "gateway.resource": resource, "http.response.status_code": status}
    if error_code:
        dims["error.type"] = error_code
    return dims
