"""A known set of logged calls, written in the request log's real entity format, for hand-checked numbers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from shared.monitoring.memtable import MemoryTable
from shared.usage.log import UsageRecord

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)  # calls in hours 10 and 11 of one day
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc)


_TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")


def entity(project: str, at: datetime, *, status: int = 200, latency: float = 100.0, overhead: float = 2.0,
           model: str = "gpt", key: str | None = "k1", pillar: str | None = None, resource: str | None = None,
           attributes: dict[str, Any] | None = None, legacy: bool = False, **kw: Any) -> dict[str, Any]:
    """A row as the pipeline's writer stores it (attributes become columns); `legacy`: as the pre-pipeline
    writer did (a `model` column, no pillar/resource, attempts naming a `backend`)."""
    attrs = {**{k: kw.pop(k) for k in _TOKENS if k in kw}, **(attributes or {})}
    if "attempts" in kw and not legacy:
        kw["attempts"] = [{"target" if k == "backend" else k: v for k, v in a.items()} for a in kw["attempts"]]
    rec = UsageRecord(request_id=f"r-{at:%H%M%S%f}", project_id=project, key_id=key, operation="chat",
                      pillar=pillar or "models", resource=resource or model, status=status, latency_ms=latency,
                      overhead_ms=overhead, at=at, attributes=attrs, **kw)
    e = rec.to_entity()
    if legacy:
        e.pop("pillar")
        e["model"] = e.pop("resource")
    return e


def known_calls() -> list[dict[str, Any]]:
    """Hour 10: 10 model calls (half written by the pre-pipeline writer) on gpt/k1, latencies 10..100 ms, two 500s, tokens 10+5 each, cost 0.01 each, one
    failover off backend 'a'. Hour 11: 4 calls on gpt/k2 (one 429 quota refusal), 1 tool call, 1 agent call."""
    out = []
    for i in range(10):
        status = 500 if i in (3, 7) else 200
        attempts = [{"backend": "a", "status": 503}, {"backend": "b", "status": 200}] if i == 5 else []
        out.append(entity("p1", T0 + timedelta(minutes=i), status=status, latency=10.0 * (i + 1),
                          overhead=1.0 + i, prompt_tokens=10, completion_tokens=5, total_tokens=15,
                          cost_usd=0.01, failovers=1 if i == 5 else 0, attempts=attempts, legacy=i % 2 == 0))
    h11 = T0 + timedelta(hours=1)
    for i in range(4):
        out.append(entity("p1", h11 + timedelta(minutes=i), key="k2", latency=200.0,
                          status=429 if i == 0 else 200, error_code="quota_exceeded" if i == 0 else None,
                          total_tokens=100, cost_usd=0.5))
    out.append(entity("p1", h11 + timedelta(minutes=10), pillar="tools", resource="search", latency=50.0,
                      attributes={"correlation_id": "c1", "cache": "hit"}))
    out.append(entity("p1", h11 + timedelta(minutes=11), pillar="agents", resource="planner", latency=900.0,
                      attributes={"correlation_id": "c1"}))
    out.append(entity("p1", h11 + timedelta(minutes=12), model="gpt", key="k2", latency=300.0,
                      pillar="models", resource="gpt", attributes={"correlation_id": "c1", "cached_tokens": 7}))
    out.append(entity("p2", T0, latency=1.0))  # another project: never in p1's numbers
    return out


def table_with(entities: list[dict[str, Any]]) -> MemoryTable:
    t = MemoryTable()
    for e in entities:
        t.rows[(e["PartitionKey"], e["RowKey"])] = e
    return t
