"""Tool lockfile: the approved definition of each tool is canonicalised (RFC 8785 JCS) and hashed; a definition
seen upstream later that hashes differently quarantines the tool (not listed, not callable) until an admin
re-approves it with the diff of what changed.

`PinningService.observe` is the one entry point: the data plane calls it with what `tools/list` returned (list
time), the timer function with what its own probe listed. It only ever moves a tool *out* of service (approved
→ quarantined) or records new/pending tools; putting one back takes an admin (`reapprove`).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rfc8785

from ...errors import Conflict
from ...storage.repository import Repository
from .audit import AuditTrail
from .domain import ApprovalAction, PinnedDefinition, ToolDefinition

log = logging.getLogger("gateway.tools.pinning")
PINNED_FIELDS = ("name", "title", "description", "input_schema", "output_schema", "annotations")


def definition_of(tool: dict[str, Any]) -> PinnedDefinition:
    """An MCP `tools/list` entry (camelCase wire names) as the pinned part of a definition."""
    return PinnedDefinition(name=str(tool.get("name", "")), title=tool.get("title"),
                            description=tool.get("description"),
                            input_schema=tool.get("inputSchema") or {"type": "object"},
                            output_schema=tool.get("outputSchema"), annotations=tool.get("annotations"))


def canonical(definition: PinnedDefinition) -> bytes:
    return rfc8785.dumps(definition.model_dump(mode="json"))


def definition_hash(definition: PinnedDefinition) -> str:
    return "sha256:" + hashlib.sha256(canonical(definition)).hexdigest()


def _walk(path: str, before: Any, after: Any, out: list[dict[str, Any]], limit: int) -> None:
    if len(out) >= limit or before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            _walk(f"{path}/{key}", before.get(key), after.get(key), out, limit)
        return
    out.append({"path": path, "before": before, "after": after})


def diff(before: PinnedDefinition, after: PinnedDefinition, limit: int = 200) -> list[dict[str, Any]]:
    """What changed, as JSON-pointer paths with the before/after values (bounded)."""
    out: list[dict[str, Any]] = []
    _walk("", before.model_dump(mode="json"), after.model_dump(mode="json"), out, limit)
    return out


@dataclass
class Observation:
    """What one check found for one server."""

    quarantined: list[str] = field(default_factory=list)  # namespaced names newly quarantined
    unchanged: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # original names listed upstream but not registered
    missing: list[str] = field(default_factory=list)  # registered (approved) but no longer listed upstream

    @property
    def changed(self) -> bool:
        return bool(self.quarantined)


class PinningService:
    def __init__(self, tools: Repository[ToolDefinition], audit: AuditTrail, *,
                 on_change: Callable[[str], None] = lambda project_id: None) -> None:
        self._tools = tools
        self._audit = audit
        self._on_change = on_change
        self._clock = audit.clock

    async def _record(self, tool: ToolDefinition, action: ApprovalAction, actor: str, reason: str,
                      changes: list[dict[str, Any]] | None) -> None:
        await self._audit.record(tool.project_id, action, "mcp_tool", tool.id, actor=actor, reason=reason,
                                 diff=changes)

    async def observe(self, project_id: str, server_id: str, listed: list[PinnedDefinition], *,
                      registered: list[ToolDefinition], actor: str = "pinning") -> Observation:
        """Compare what the server lists now with the registered tools of that server; quarantine each
        approved tool whose definition no longer hashes to its pin."""
        result = Observation()
        by_original = {t.original_name: t for t in registered if t.server_id == server_id}
        seen: set[str] = set()
        for definition in listed:
            tool = by_original.get(definition.name)
            if tool is None:
                result.unknown.append(definition.name)
                continue
            seen.add(definition.name)
            observed = definition_hash(definition)
            if tool.pinned_hash is None or observed == tool.pinned_hash:
                result.unchanged.append(tool.name)
                continue
            if tool.status == "quarantined" and tool.drifted_hash == observed:
                continue  # already quarantined for this very change
            await self._quarantine(tool, definition, observed, actor)
            result.quarantined.append(tool.name)
        result.missing = [t.name for n, t in by_original.items() if n not in seen and t.status == "approved"]
        if result.quarantined:
            self._on_change(project_id)
        return result

    async def _quarantine(self, tool: ToolDefinition, definition: PinnedDefinition, observed: str,
                          actor: str) -> None:
        changes = diff(tool.definition, definition)
        now = self._clock()

        def change(t: ToolDefinition) -> None:
            t.drifted, t.drifted_hash, t.status = definition, observed, "quarantined"
            t.status_reason = "definition changed upstream: " + ", ".join(c["path"] for c in changes[:10])
            t.status_changed_at = now

        await self._tools.update(tool.project_id, tool.id, change)
        log.warning("tool quarantined project=%s tool=%s changes=%s", tool.project_id, tool.id,
                    [c["path"] for c in changes])
        await self._record(tool, "quarantined", actor, "definition changed upstream", changes)

    async def reapprove(self, project_id: str, name: str, actor: str, reason: str,
                        expected_hash: str | None = None) -> ToolDefinition:
        """Pin the drifted definition. `expected_hash`: the drifted hash the admin reviewed — if the upstream
        changed again meanwhile, the re-approval is refused rather than pinning something unseen."""
        tool = await self._tools.get(project_id, name)
        if tool.status != "quarantined" or tool.drifted is None:
            raise Conflict(f"tool '{name}' is not quarantined for a definition change.", code="not_quarantined")
        if expected_hash is not None and expected_hash != tool.drifted_hash:
            raise Conflict("the upstream definition changed again since the diff was read; review it again.",
                           code="drift_changed", details={"drifted_hash": tool.drifted_hash})
        changes = diff(tool.definition, tool.drifted)
        now = self._clock()

        def change(t: ToolDefinition) -> None:
            assert t.drifted is not None
            t.definition, t.pinned_hash = t.drifted, t.drifted_hash
            t.drifted = t.drifted_hash = None
            t.status, t.status_reason, t.status_changed_at = "approved", reason, now

        updated = await self._tools.update(project_id, name, change)
        await self._record(updated, "reapproved", actor, reason, changes)
        self._on_change(project_id)
        return updated
