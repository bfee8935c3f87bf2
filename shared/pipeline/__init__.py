"""The generic governance pipeline (see docs/architecture.md, "The governance pipeline")."""
from .exchange import Estimate, Exchange, Relayed, Usage
from .pipeline import Pipeline
from .spec import PillarSpec
from .steps import PassStep, Step
from .telemetry import NoTelemetry, Telemetry

__all__ = ["Estimate", "Exchange", "NoTelemetry", "PassStep", "PillarSpec", "Pipeline", "Relayed", "Step",
           "Telemetry", "Usage"]
