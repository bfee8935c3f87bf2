"""What monitoring reads from the agents pillar, plugged in by the composition root (shared/services.py): the
alert source of sync runs that failed (or partly failed) in a rule's window (`GatewaySources(sync=...)`), and the
registered agents per project for adoption (retired ones not counted). One partition read each."""
from __future__ import annotations

from datetime import datetime

from shared.monitoring.paging import list_all
from shared.storage.repository import Repository

from .domain import Agent, SyncRun

FAILED = frozenset({"failed", "partial"})


class AgentSyncFailures:
    def __init__(self, runs: Repository[SyncRun]) -> None:
        self._runs = runs

    async def __call__(self, project: str, since: datetime) -> int:
        return sum(1 for r in await list_all(self._runs, project) if r.status in FAILED and r.started_at >= since)


class AgentsAdoption:
    def __init__(self, agents: Repository[Agent]) -> None:
        self._agents = agents

    async def __call__(self, project: str) -> int:
        return sum(1 for a in await list_all(self._agents, project) if a.lifecycle != "retired")
