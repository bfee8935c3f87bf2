"""The one A2A front for every agent: a composite agent runs on its own pipeline (CompositeSpec), every other
agent on the agents pipeline (AgentsSpec). The HTTP adapter and every hop of a composite task call `run`, so a
hop is governed exactly like a client's call."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from ....errors import GatewayError
from ....pipeline.exchange import Exchange
from ..domain import AgentDirectory


class AgentsFront:
    def __init__(self, directory: AgentDirectory, agents: Callable[[], Any], composites: Callable[[], Any]) -> None:
        self._directory, self._agents, self._composites = directory, agents, composites

    async def is_composite(self, x: Exchange) -> bool:
        """A cached directory read. Any refusal → False: the agents pipeline then refuses the call itself, with
        its own error and log behaviour."""
        project = x.principal.project_id
        if project is None:
            return False
        try:
            invocation = await self._directory.resolve(project, x.resource, x.principal)
        except GatewayError:
            return False
        return invocation.agent.spec.source == "composite"

    async def run(self, x: Exchange) -> Response:
        pipeline = self._composites() if await self.is_composite(x) else self._agents()
        return await pipeline.run(x)
