"""Assembling the tools pillar: its registry side (control plane) and its MCP data plane on the generic pipeline.
Everything is built lazily on first use (see `ToolsPillar`)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...config import Settings
from ...egress import EgressPolicy
from ...flags.service import FlagService
from ...quotas.book import QuotaBook
from ...storage.documents import DocumentStore
from .queue import SubmissionQueue
from .wiring import OnClose, ToolsDeps, ToolsPillar

if TYPE_CHECKING:
    from ...quotas.enforcer import QuotaEnforcer
    from ...usage.log import UsageLog


def assemble_tools(settings: Settings, *, store: DocumentStore, egress: EgressPolicy, quotas: QuotaBook,
                   flags: FlagService, enforcer: Callable[[], "QuotaEnforcer"], usage: Callable[[], "UsageLog"],
                   credential: Callable[[], Any], on_close: OnClose,
                   queue: SubmissionQueue | None = None, telemetry: Callable[[], Any] | None = None,
                   instrument: Callable[[Any, Any], None] | None = None,
                   trace: Callable[[], dict[str, str]] | None = None,
                   guardrails: Callable[[], Any] | None = None) -> ToolsPillar:
    """`on_close(name, aclose)`: registers what this pillar opens with the composition root's exit stack;
    `enforcer`/`usage`/`credential`/`telemetry` are lazy (their clients bind to the worker's event loop);
    `instrument(upstream_http, breakers)` and `trace()` are the telemetry's hooks (None: telemetry off);
    `guardrails()`: the shared guardrail step, run on every `tools/call` (shared/pillars/tools/guardrails.py)."""
    deps = ToolsDeps(settings=settings, store=store, egress=egress, quota_book=quotas, flags=flags,
                     enforcer=enforcer, usage=usage, credential=credential, on_close=on_close,
                     telemetry=telemetry, instrument=instrument, trace=trace,
                     guardrails=guardrails)
    return ToolsPillar(deps, queue=queue)
