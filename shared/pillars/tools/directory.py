"""ToolDirectory: what the MCP data plane asks the registry — which tools of a toolbox a caller may use, where a
namespaced tool goes, and a server by id.

The rules live in one place (`ProjectTools`), a snapshot of one project's tools registry; the memory directory
(tests) holds snapshots directly, the registry directory loads them through the fail-static cache (a change is
seen within the cache TTL, or at once on the instance that made it: the admin API invalidates).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...auth.principal import Principal, Role
from ...cache import FailStaticCache
from ...errors import Forbidden, NotFound
from ...storage.documents import DocumentStore
from ...storage.repository import Repository, load_kinds
from .domain import SERVABLE_LIFECYCLE, ApiSource, McpServer, ServerTarget, ToolDefinition, Toolbox

_PAGE = 500
_MAX_PAGES = 40  # per kind: 20,000 documents of each per project, far above any sane registry, still bounded


@dataclass(frozen=True)
class ResolvedTool:
    """A callable tool: its approved definition and where to send it (an MCP server's targets, or an API)."""

    definition: ToolDefinition
    server: McpServer | None = None
    api_source: ApiSource | None = None

    @property
    def targets(self) -> list[ServerTarget]:
        return self.server.targets() if self.server is not None else []


def allowed_tools(principal: Principal) -> frozenset[str] | None:
    """The per-key tool allow-list (namespaced names), None for every tool. Read by attribute so it works before
    and after the generic pipeline gives principals per-pillar scopes."""
    scopes = getattr(principal, "scopes", None)
    if isinstance(scopes, dict) and (tools := scopes.get("tools")) is not None:
        return tools if isinstance(tools, frozenset) else frozenset(tools)
    # read from the instance dict: a missing attribute on a pydantic model raises inside its __getattr__, which
    # cost more than the rest of the lookup on every call
    value = getattr(principal, "__dict__", {}).get("allowed_tools")
    return frozenset(value) if value is not None else None


@dataclass
class ProjectTools:
    """One project's tools registry; every visibility rule of the data plane is a method here."""

    project_id: str
    servers: dict[str, McpServer] = field(default_factory=dict)
    api_sources: dict[str, ApiSource] = field(default_factory=dict)
    tools: dict[str, ToolDefinition] = field(default_factory=dict)  # by namespaced name
    toolboxes: dict[str, Toolbox] = field(default_factory=dict)

    def source_servable(self, tool: ToolDefinition) -> bool:
        origin = (self.servers if tool.source == "mcp" else self.api_sources).get(tool.server_id)
        return origin is not None and origin.approval == "approved" and origin.lifecycle in SERVABLE_LIFECYCLE

    def servable(self, tool: ToolDefinition) -> bool:
        """Approved, pinned, and its server approved and published: quarantined/pending tools are never served."""
        return tool.status == "approved" and tool.pinned_hash is not None and self.source_servable(tool)

    def toolbox_for(self, principal: Principal, toolbox_id: str) -> Toolbox:
        box = self.toolboxes.get(toolbox_id)
        if box is None or not may_open(principal, self.project_id, box):
            raise NotFound(f"toolbox '{toolbox_id}' does not exist.", code="toolbox_not_found")
        return box

    def usable(self, principal: Principal, box: Toolbox) -> list[ToolDefinition]:
        allowed = allowed_tools(principal)
        return [t for name in box.spec.tools
                if (t := self.tools.get(name)) is not None and self.servable(t)
                and (allowed is None or name in allowed)]

    def resolve(self, principal: Principal, toolbox_id: str, name: str) -> ResolvedTool:
        box = self.toolbox_for(principal, toolbox_id)
        tool = self.tools.get(name)
        if tool is None or name not in box.spec.tools or not self.servable(tool):
            raise NotFound(f"tool '{name}' is not available in toolbox '{toolbox_id}'.", code="tool_not_found")
        allowed = allowed_tools(principal)
        if allowed is not None and name not in allowed:
            raise Forbidden(f"this key may not call tool '{name}'.", code="tool_not_allowed")
        if tool.source == "api":
            return ResolvedTool(tool, api_source=self.api_sources[tool.server_id])
        return ResolvedTool(tool, server=self.servers[tool.server_id])


def may_open(principal: Principal, project_id: str, box: Toolbox) -> bool:
    """A data-plane key opens its own project's toolboxes; a personal toolbox only its owner (or an admin). The
    owner is a developer's subject; a virtual key is theirs when it was issued to them (`Principal.owner`) — its
    own `subject` is the key's id, never compared with a person's."""
    if principal.kind == "virtual_key" and principal.project_id != project_id:
        return False
    if box.owner.type == "personal":
        if Role.admin in principal.roles:
            return True
        who = principal.owner if principal.kind == "virtual_key" else principal.subject
        return who is not None and who == box.owner.subject
    return True


class ToolDirectory(Protocol):
    async def list_tools(self, principal: Principal, project_id: str, toolbox_id: str) -> list[ToolDefinition]:
        """The servable tools of the toolbox that `principal` may use (NotFound for an unknown toolbox)."""

    async def resolve(self, principal: Principal, project_id: str, toolbox_id: str, name: str) -> ResolvedTool:
        """Where a namespaced tool goes; NotFound when it is not servable in the toolbox, Forbidden when the
        key's allow-list excludes it."""

    async def server(self, project_id: str, server_id: str) -> McpServer | None: ...

    async def toolbox(self, principal: Principal, project_id: str, toolbox_id: str) -> Toolbox: ...


class _SnapshotDirectory:
    async def snapshot(self, project_id: str) -> ProjectTools:
        raise NotImplementedError

    async def list_tools(self, principal: Principal, project_id: str, toolbox_id: str) -> list[ToolDefinition]:
        snap = await self.snapshot(project_id)
        return snap.usable(principal, snap.toolbox_for(principal, toolbox_id))

    async def resolve(self, principal: Principal, project_id: str, toolbox_id: str, name: str) -> ResolvedTool:
        return (await self.snapshot(project_id)).resolve(principal, toolbox_id, name)

    async def server(self, project_id: str, server_id: str) -> McpServer | None:
        return (await self.snapshot(project_id)).servers.get(server_id)

    async def toolbox(self, principal: Principal, project_id: str, toolbox_id: str) -> Toolbox:
        return (await self.snapshot(project_id)).toolbox_for(principal, toolbox_id)


class MemoryToolDirectory(_SnapshotDirectory):
    """For tests: register entities directly; the same rules as the registry-backed directory."""

    def __init__(self) -> None:
        self._projects: dict[str, ProjectTools] = {}

    def _project(self, project_id: str) -> ProjectTools:
        return self._projects.setdefault(project_id, ProjectTools(project_id))

    def add(self, *entities: McpServer | ApiSource | ToolDefinition | Toolbox) -> "MemoryToolDirectory":
        for e in entities:
            p = self._project(e.project_id)
            target = {McpServer: p.servers, ApiSource: p.api_sources, ToolDefinition: p.tools,
                      Toolbox: p.toolboxes}[type(e)]
            target[e.id] = e
        return self

    async def snapshot(self, project_id: str) -> ProjectTools:
        return self._projects.get(project_id) or ProjectTools(project_id)


async def load_project_tools(store: DocumentStore, project_id: str) -> ProjectTools:
    """One project's tools registry, read with one query for its four kinds (`load_kinds`)."""
    kinds = [Repository(store, McpServer), Repository(store, ApiSource), Repository(store, ToolDefinition),
             Repository(store, Toolbox)]
    found = await load_kinds(store, project_id, kinds, page=_PAGE, max_pages=_MAX_PAGES * len(kinds))
    return ProjectTools(project_id, servers=found[McpServer.kind], api_sources=found[ApiSource.kind],
                        tools=found[ToolDefinition.kind], toolboxes=found[Toolbox.kind])


class RegistryToolDirectory(_SnapshotDirectory):
    """Registry-backed: one snapshot per project through the fail-static cache (fresh for `ttl`, served stale
    through a storage outage for up to `max_stale`, then 503). `invalidate` after a change on this instance."""

    def __init__(self, store: DocumentStore, *, ttl: float, max_stale: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._cache: FailStaticCache[str, ProjectTools] = FailStaticCache(
            self._load, ttl=ttl, max_stale=max_stale, clock=clock, max_entries=10_000)

    async def _load(self, project_id: str) -> ProjectTools:
        return await load_project_tools(self._store, project_id)

    async def snapshot(self, project_id: str) -> ProjectTools:
        return await self._cache.get(project_id)

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)
