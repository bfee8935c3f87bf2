"""The tools registry: servers, API sources, tools and toolboxes of a project, with the rules that hold across
documents — a registered URL passes the egress policy, a namespace belongs to one server/API per project, tool
names never collide, a toolbox only holds the project's tools, and a change reaches the data plane's directory."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...egress import EgressPolicy
from ...errors import Conflict, ValidationFailed
from ...storage.documents import DocumentStore
from ...storage.repository import Repository
from .directory import ProjectTools, load_project_tools
from .domain import (
    ApiBinding, ApiSource, ApprovalRecord, McpServer, PinnedDefinition, Submission, ToolDefinition, Toolbox,
    ToolsPolicy)
from .namespaces import NamePlan, ensure_namespace_free, plan_names
from .pinning import definition_hash


class ToolsRegistry:
    def __init__(self, store: DocumentStore, egress: EgressPolicy, *,
                 on_change: Callable[[str], None] = lambda project_id: None) -> None:
        self.store = store
        self.egress = egress
        self.servers = Repository(store, McpServer)
        self.api_sources = Repository(store, ApiSource)
        self.tools = Repository(store, ToolDefinition)
        self.toolboxes = Repository(store, Toolbox)
        self.submissions = Repository(store, Submission)
        self.records = Repository(store, ApprovalRecord)
        self.policies = Repository(store, ToolsPolicy)
        self.changed = on_change
        # What a project owns in the tools pillar: a project is deletable only when these are empty, and a cascade
        # delete purges them (the audit trail included — nothing of a deleted project lingers in its partition).
        self.owned = [self.servers, self.api_sources, self.tools, self.toolboxes, self.submissions, self.policies,
                      self.records]

    async def snapshot(self, project_id: str) -> ProjectTools:
        """Fresh (uncached): the control plane decides on what is stored now."""
        return await load_project_tools(self.store, project_id)

    # ---- registration checks

    async def check_server(self, server: McpServer) -> None:
        await self.egress.check(str(server.spec.url), "url")
        for i, replica in enumerate(server.spec.replicas):
            await self.egress.check(str(replica.url), f"replicas.{i}.url")
        auth = server.spec.auth
        if auth.type == "oauth_client_credentials":
            await self.egress.check(str(auth.token_url), "auth.token_url")
        await self._namespace_free(server.project_id, server.spec.namespace, server.id)

    async def check_api_source(self, source: ApiSource) -> None:
        spec = source.spec
        for field, url in (("document_url", spec.document_url), ("base_url", spec.base_url)):
            if url is not None:
                await self.egress.check(str(url), field)
        if spec.auth.type == "oauth_client_credentials":
            await self.egress.check(str(spec.auth.token_url), "auth.token_url")
        await self._namespace_free(source.project_id, spec.namespace, source.id)

    async def _namespace_free(self, project_id: str, namespace: str, owner_id: str) -> None:
        snap = await self.snapshot(project_id)
        taken = {s.spec.namespace: s.id for s in snap.servers.values()}
        taken.update({a.spec.namespace: a.id for a in snap.api_sources.values()})
        ensure_namespace_free(namespace, owner_id, taken)

    async def check_toolbox(self, project_id: str, tools: list[str]) -> None:
        snap = await self.snapshot(project_id)
        unknown = [t for t in tools if t not in snap.tools]
        if unknown:
            raise ValidationFailed("A toolbox can only hold tools registered in its project.",
                                   details=[{"field": "tools", "message": f"unknown tool '{t}'"} for t in unknown])

    async def ensure_unreferenced(self, project_id: str, owner_id: str) -> None:
        """A server/API source whose tools a toolbox still lists cannot be deleted (no dangling toolboxes)."""
        snap = await self.snapshot(project_id)
        names = {t.name for t in snap.tools.values() if t.server_id == owner_id}
        used = sorted(b.id for b in snap.toolboxes.values() if names & set(b.spec.tools))
        if used:
            raise Conflict(f"Tools of '{owner_id}' are used by toolboxes {', '.join(used)}; remove them first.",
                           code="in_use", details={"toolboxes": used})

    async def delete_tools_of(self, project_id: str, owner_id: str) -> None:
        for tool in (await self.snapshot(project_id)).tools.values():
            if tool.server_id == owner_id:
                await self.tools.delete(project_id, tool.id)
        self.changed(project_id)

    # ---- tools from an approved submission

    async def register_tools(self, project_id: str, owner_id: str, namespace: str, source: str,
                             listed: list[PinnedDefinition], bindings: dict[str, ApiBinding] | None = None
                             ) -> NamePlan:
        """Pin and approve `listed` (what the admin approved). Colliding names are reported, not registered;
        tools the server no longer lists are rejected (kept for the audit, never served)."""
        snap = await self.snapshot(project_id)
        existing = {t.name: t.server_id for t in snap.tools.values()}
        plan = plan_names(namespace, owner_id, listed, existing)
        for definition in listed:
            name = plan.names.get(definition.name)
            if name is None:
                continue
            await self._pin(project_id, owner_id, source, name, definition, (bindings or {}).get(definition.name),
                            snap.tools.get(name))
        kept = set(plan.names.values())
        for tool in snap.tools.values():
            if tool.server_id == owner_id and tool.name not in kept and tool.status != "rejected":
                await self.tools.update(project_id, tool.id, _reject("no longer listed by the server"))
        self.changed(project_id)
        return plan

    async def _pin(self, project_id: str, owner_id: str, source: str, name: str, definition: PinnedDefinition,
                   binding: ApiBinding | None, current: ToolDefinition | None) -> None:
        pinned = definition_hash(definition)
        fields: dict[str, Any] = dict(definition=definition, pinned_hash=pinned, drifted=None, drifted_hash=None,
                                      status="approved", status_reason="approved with its submission",
                                      binding=binding)
        if current is None:
            await self.tools.create(ToolDefinition(id=name, project_id=project_id, server_id=owner_id,
                                                   source=source, original_name=definition.name, name=name,
                                                   **fields))  # type: ignore[arg-type]
            return

        def change(t: ToolDefinition) -> None:
            for key, value in fields.items():
                setattr(t, key, value)

        await self.tools.update(project_id, name, change)


def _reject(reason: str) -> Callable[[ToolDefinition], None]:
    def change(t: ToolDefinition) -> None:
        t.status, t.status_reason = "rejected", reason
    return change
