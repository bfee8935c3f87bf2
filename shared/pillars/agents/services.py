"""The agents pillar's part of the composition root (mixed into `shared.services.Services`): the pillar, its
pipeline, the A2A front (composite agents) and the agent cards, each assembled on first use (shared/pillars/agents/
assemble.py); `self` is the one `Services` instance."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from ...pipeline.pipeline import Pipeline
    from .a2a.card import CardRenderer
    from .pillar import AgentsPillar


class AgentsServices:
    @cached_property
    def agents(self) -> "AgentsPillar":
        from .assemble import assemble_agents

        return assemble_agents(self.settings, store=self.store, egress=self.egress,
                               project_exists=lambda pid: self.projects.get(pid, pid),
                               credential=lambda: self.credential, on_close=self._on_close)

    @cached_property
    def agents_pipeline(self) -> "Pipeline":
        from .assemble import assemble_agents_pipeline

        return assemble_agents_pipeline(self.agents, quotas=self.quota_book, enforcer=self.enforcer,
                                        usage=self.usage_log, flags=self.flags, egress=self.egress,
                                        on_close=self._on_close, telemetry=self.telemetry,
                                        instrument=self._instrument, trace=self._trace_carrier(),
                                        guardrails=self.guardrail_step)

    @cached_property
    def agents_front(self) -> Any:
        """The A2A front: composite agents on their own pipeline, every other agent on agents_pipeline."""
        from .composition.assemble import assemble_front

        return assemble_front(self.agents.directory, lambda: self.agents_pipeline, store=self.store,
                              credentials=self.agents.credentials, quotas=self.quota_book, enforcer=self.enforcer,
                              usage=self.usage_log, flags=self.flags, telemetry=self.telemetry)

    @cached_property
    def agents_cards(self) -> "CardRenderer":
        from .a2a.card import CardRenderer

        return CardRenderer.from_settings(self.settings)
