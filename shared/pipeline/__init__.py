"""The generic governance pipeline (see docs/architecture.md, "The governance pipeline").

Names are exported lazily: an adapter module imported at cold start (functions/*.py) pulls in only what it
touches (`Exchange`), not the pipeline's runtime dependencies.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {"Estimate": "exchange", "Exchange": "exchange", "Relayed": "exchange", "Usage": "exchange",
            "Pipeline": "pipeline", "PillarSpec": "spec", "PassStep": "steps", "Step": "steps",
            "NoTelemetry": "telemetry", "Telemetry": "telemetry"}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .exchange import Estimate, Exchange, Relayed, Usage
    from .pipeline import Pipeline
    from .spec import PillarSpec
    from .steps import PassStep, Step
    from .telemetry import NoTelemetry, Telemetry


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
