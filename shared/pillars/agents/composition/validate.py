"""The registry's check of a composite agent before it is stored: members exist in the project, are published,
and no composition reaches itself through its members (directly or through nested composites).

Run on every register/update of an agent (AgentRegistry.spec_checks), so neither the composite endpoints nor a
plain PUT of the agent can store a composition that names a draft, a missing agent or a cycle. A member that is
later deprecated, suspended or retired is refused at call time by the directory (lifecycle rules)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ....errors import ValidationFailed
from .contracts import Composition

MAX_DEPTH = 8  # nesting of composites inside composites

# (project, agent id) → the stored agent, or None
Lookup = Callable[[str, str], Awaitable[Any]]


def _refuse(field: str, message: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"composition: {message}", code=code,
                            details=[{"field": f"spec.composition.{field}", "message": message}])


class CompositionCheck:
    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup

    async def __call__(self, project_id: str, agent_id: str, spec: Any) -> None:
        comp: Composition | None = getattr(spec, "composition", None)
        if comp is None:
            return
        for member in comp.member_ids():
            agent = await self._lookup(project_id, member)
            if member == agent_id:
                raise _refuse("members", f"'{agent_id}' cannot be its own member", "composition_cycle")
            if agent is None:
                raise _refuse("members", f"member '{member}' does not exist in this project", "unknown_member")
            if agent.lifecycle != "published":
                raise _refuse("members", f"member '{member}' is {agent.lifecycle}; only published agents can be "
                                         "members", "member_not_published")
        await self._no_cycle(project_id, agent_id, comp, [agent_id])

    async def _no_cycle(self, project_id: str, root: str, comp: Composition, path: list[str]) -> None:
        if len(path) > MAX_DEPTH:
            raise _refuse("members", f"composites nest deeper than {MAX_DEPTH} levels: {' → '.join(path)}",
                          "composition_too_deep")
        for member in comp.member_ids():
            if member == root or member in path:
                raise _refuse("members", f"cycle: {' → '.join([*path, member])}", "composition_cycle")
            agent = await self._lookup(project_id, member)
            inner = getattr(getattr(agent, "spec", None), "composition", None)
            if inner is not None:
                await self._no_cycle(project_id, root, inner, [*path, member])

