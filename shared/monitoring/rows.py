"""One request-log row as the monitoring code reads it, whichever pillar (and writer version) wrote it.

Rows are re-validated on read: a row that no longer parses is counted and skipped, never served and never the
reason a page fails. Rows written before the generic pipeline carry no `pillar`/`resource`: they are models
calls, and their `model` is the resource.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import orjson
from pydantic import Field, ValidationError

from ..domain.base import AppModel

log = logging.getLogger("gateway.monitoring")

# The columns an export writes, in order (never the prompt/completion payload: exports are for accounting).
EXPORT_COLUMNS = ("at", "request_id", "project_id", "pillar", "resource", "operation", "key_id", "key_prefix",
                  "backend", "status", "error_code", "prompt_tokens", "completion_tokens", "total_tokens",
                  "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "overhead_ms", "retries",
                  "failovers", "cache_hit", "guardrail_blocked", "streamed", "correlation_id")


class LogRow(AppModel):
    at: datetime
    request_id: str = "-"
    project_id: str
    pillar: str = "models"
    resource: str | None = None
    operation: str = "-"
    key_id: str | None = None
    key_prefix: str | None = None
    backend: str | None = None
    status: int = Field(ge=0, le=999)
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    retries: int = 0
    failovers: int = 0
    cache_hit: bool = False
    guardrail_blocked: bool = False
    streamed: bool = False
    correlation_id: str | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)
    row_key: str = ""

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def failed_backends(self) -> list[str]:
        """Targets (model backends, MCP replicas, agent endpoints) an attempt failed on: what a failover left."""
        out = []
        for a in self.attempts:
            target, status = a.get("target") or a.get("backend"), a.get("status")
            if isinstance(target, str) and (not isinstance(status, int) or status >= 400 or a.get("error")):
                out.append(target)
        return out

    def export(self) -> dict[str, Any]:
        data = self.model_dump(include=set(EXPORT_COLUMNS))
        data["at"] = self.at.isoformat()
        return {c: data.get(c) for c in EXPORT_COLUMNS}


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return default
    return value if value is not None else default


# Columns that are not a pillar's attributes (the generic ones, Tables' own, and the opt-in payload).
_NOT_ATTRIBUTES = frozenset(LogRow.model_fields) | {"PartitionKey", "RowKey", "Timestamp", "etag", "model",
                                                    "target", "prompt", "completion", "log_error", "row_id"}


def from_entity(entity: dict[str, Any]) -> LogRow | None:
    """→ the row, or None when the stored entity no longer validates (logged; the caller counts it).
    The pipeline writes a pillar's attributes as columns of their own; early rows held them as one JSON column."""
    attrs = _json(entity.get("attributes"), {})
    attrs = dict(attrs) if isinstance(attrs, dict) else {}
    attrs.update((k, v) for k, v in entity.items() if k not in _NOT_ATTRIBUTES and isinstance(v, (str, int, float)))
    attempts = _json(entity.get("attempts"), [])
    data = {k: v for k, v in entity.items() if k in LogRow.model_fields}
    data["attempts"] = [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else []
    data["attributes"] = attrs
    data["resource"] = entity.get("resource") or entity.get("model") or attrs.get("tool") or attrs.get("agent")
    for name in ("cached_tokens", "reasoning_tokens", "correlation_id"):
        if data.get(name) is None and attrs.get(name) is not None:
            data[name] = attrs[name]
    data["cache_hit"] = bool(entity.get("cache_hit") or attrs.get("cache") == "hit")
    data["guardrail_blocked"] = bool(entity.get("guardrail_blocked") or attrs.get("guardrail") == "block"
                                     or str(entity.get("error_code") or "").startswith("guardrail"))
    data["backend"] = entity.get("target") or entity.get("backend")
    data["row_key"] = entity.get("RowKey", "")
    at = data.get("at")
    if isinstance(at, datetime) and at.tzinfo is None:
        data["at"] = at.replace(tzinfo=timezone.utc)
    try:
        return LogRow.model_validate(data)
    except ValidationError as exc:
        log.warning("request-log row %s/%s skipped: %s", entity.get("PartitionKey"), entity.get("RowKey"),
                    exc.errors(include_url=False, include_input=False)[:3])
        return None
