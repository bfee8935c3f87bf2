"""Assembling composite agents: their pipeline (CompositeSpec over the shared quotas, usage log and flags, its
own breakers) and the front that dispatches between it and the agents pipeline."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ....flags.service import FlagService
from ....pipeline.pipeline import Pipeline
from ....pipeline.telemetry import Telemetry
from ....quotas.book import QuotaBook
from ....quotas.enforcer import QuotaEnforcer
from ....routing.breaker import Breakers
from ....storage.documents import DocumentStore
from ....storage.repository import Repository
from ....usage.log import UsageLog
from ..domain import AgentDirectory
from .front import AgentsFront
from .spec import CompositeSpec
from .tasks import CompositeTask, TaskStore


def assemble_front(directory: AgentDirectory, agents_pipeline: Callable[[], Pipeline], *, store: DocumentStore,
                   credentials: Any, quotas: QuotaBook, enforcer: QuotaEnforcer, usage: UsageLog,
                   flags: FlagService, telemetry: Telemetry | None = None) -> AgentsFront:
    holder: dict[str, AgentsFront] = {}
    spec = CompositeSpec(front=lambda: holder["front"].run, tasks=TaskStore(Repository(store, CompositeTask)),
                         directory=directory, http=None, credentials=credentials)  # type: ignore[arg-type]
    pipeline = Pipeline(spec, quotas=quotas, enforcer=enforcer, breakers=Breakers(), usage=usage, flags=flags,
                        telemetry=telemetry)
    holder["front"] = front = AgentsFront(directory, agents_pipeline, lambda: pipeline)
    return front
