"""Telemetry hooks of the pipeline: one span per call, a child span per stage and per upstream attempt.

The default does nothing at (almost) no cost: `span` hands back one shared no-op context manager. The monitoring
pillar implements `Telemetry` (OpenTelemetry / Application Insights) and passes it to `Pipeline(telemetry=...)`.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from .exchange import Exchange


class Telemetry(Protocol):
    def call_started(self, x: Exchange) -> None:
        """Open the call's span (ended in `call_finished`, which always runs — streams end it after the last
        chunk)."""

    def span(self, x: Exchange, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        """A child span of the call: "resolve", "steps", "admit", "route", "attempt" (target=…), "relay"."""

    def call_finished(self, x: Exchange, record: Any) -> None:
        """Close the call's span; `record` is the request-log row (a UsageRecord)."""


_NULL: AbstractContextManager[Any] = nullcontext()


class NoTelemetry:
    def call_started(self, x: Exchange) -> None:
        return None

    def span(self, x: Exchange, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        return _NULL

    def call_finished(self, x: Exchange, record: Any) -> None:
        return None
