"""The state of one governed call as it moves through the pipeline (models, tools or agents alike)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: adapters import this module at cold start
    from ..auth.principal import Principal
    from ..domain.base import Pillar
    from ..domain.routing import RoutingPolicy
    from ..quotas.enforcer import Admission
    from ..routing.failover import Outcome, Target


@dataclass(slots=True)
class Estimate:
    """What admission takes before the call: `tokens`/`cost_micros` must fit; up to `extra_*` more is reserved
    where there is room (e.g. a completion the call did not declare). Reconciled with real usage after."""

    tokens: int = 0
    cost_micros: int = 0
    extra_tokens: int = 0
    extra_cost_micros: int = 0


@dataclass(slots=True)
class Usage:
    """What the call really used (or the best estimate when the upstream did not say)."""

    tokens: int = 0
    cost_micros: int = 0
    attributes: dict[str, int | float | bool | str] = field(default_factory=dict)  # → the log row's columns


@dataclass(slots=True)
class Relayed:
    """The answer to hand to the client: a body, or a stream of chunks. Steps may wrap `chunks` (output checks)."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    media_type: str | None = None


@dataclass(slots=True)
class Exchange:
    """One call. The adapter fills the first block; the spec resolves the target; the pipeline does the rest.
    Request steps may replace `request` (redaction) — the spec reads it again when it estimates and sends."""

    pillar: Pillar
    operation: str  # the pillar's own operation: "chat", "embeddings", "tools/call", "message/send", …
    principal: Principal
    request_id: str
    request: Any  # the pillar's parsed request
    headers: Mapping[str, str]
    started: float  # perf_counter at arrival
    stream: bool = False
    # W3C trace context the caller sent outside the HTTP headers (an MCP request's `params._meta`); else headers
    trace_carrier: Mapping[str, Any] | None = None
    correlation_id: str | None = None  # shared/pipeline/correlation.py; a log column when set
    # resolved by the spec
    resource: str = ""  # the model / tool / agent name (quota scope, log column)
    entity: Any = None  # the registry entity behind it (a Model, a Tool, an Agent)
    targets: Sequence[Target] = ()
    routing: RoutingPolicy | None = None
    # filled by the pipeline
    log_payloads: bool = False
    estimate: Estimate | None = None
    admission: Admission | None = None
    reserved: dict[str, tuple[Any, int]] = field(default_factory=dict)  # target id → (capacity counter, taken)
    attributes: dict[str, Any] = field(default_factory=dict)  # steps' log columns (cache status, …), merged last
    outcome: Outcome[Any] | None = None
    overhead_ms: float = 0.0
    streamed: bool = False  # the answer went out as a stream
    status: int = 0
    error_code: str | None = None
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)  # when routing raised
    payload_in: str | None = None  # only when the project logs payloads
    payload_out: str | None = None
    # guardrail verdicts (policy, check, action, stage, hits, latency; never matched text): logged, for telemetry
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    # per-step and per-spec scratch (a cache key, a stream tally, …), never logged
    scratch: dict[str, Any] = field(default_factory=dict)
