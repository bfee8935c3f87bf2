"""Operate the tools pillar: register MCP servers and OpenAPI sources, govern their tools, curate toolboxes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from starlette.responses import Response

from shared.domain.base import AppModel, Contract, InvalidDocument
from shared.errors import AlreadyExists, BadRequest
from shared.pillars.tools.approvals import IDENTITY_FIELDS
from shared.pillars.tools.domain import (
    ApiSource, ApiSourceSpec, Lifecycle, McpServer, McpServerSpec, Toolbox, ToolboxOwner, ToolboxSpec,
    ToolDefinition, ToolSettings)
from shared.pillars.tools.pinning import diff
from shared.registry.projects import ProjectRegistry
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

from .admin_api import IF_MATCH, INVALID_DOC

if TYPE_CHECKING:  # only for types: the pillar loads on first use
    from shared.pillars.tools.wiring import ToolsPillar


class ServerList(AppModel):
    items: list[McpServer]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class ApiSourceList(AppModel):
    items: list[ApiSource]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class ToolOut(ToolDefinition):
    diff: list[dict[str, Any]] | None = Field(default=None, description="A quarantined tool: what changed.")

    @classmethod
    def of(cls, t: ToolDefinition) -> "ToolOut":
        changes = diff(t.definition, t.drifted) if t.drifted is not None else None
        return cls(**t.model_dump(), diff=changes)


class ToolList(AppModel):
    items: list[ToolOut]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class ToolboxList(AppModel):
    items: list[Toolbox]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=INVALID_DOC)


class LifecycleChange(Contract):
    state: Lifecycle


class ToolDecision(Contract):
    reason: str = Field(min_length=1, max_length=2000)
    expected_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$", description=(
        "The drifted hash you reviewed; refused if the upstream changed again since."))


class ToolboxCreate(ToolboxSpec):
    owner: ToolboxOwner = Field(default_factory=ToolboxOwner)


# Fields whose change means "another server": the approval (and so every tool) is withdrawn until re-approved, and
# an open submission probed before the change can no longer be approved (approvals.subject_hash).
_IDENTITY_FIELDS = IDENTITY_FIELDS["mcp_server"]
ToolStatusFilter = Literal["pending", "approved", "quarantined", "rejected"]


def build(tools: ToolsPillar, projects: ProjectRegistry, admin: Guard, *, max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("tools-admin", max_body_bytes=max_body_bytes)

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    def same_id(expected: str, got: str) -> None:
        if expected != got:
            raise BadRequest("The id in the body must match the URL.", code="id_mismatch",
                             details=[{"field": "id", "message": f"expected '{expected}'"}])

    async def create(repo: Any, entity: Any, what: str) -> Any:
        try:
            return await repo.create(entity)
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise
            raise AlreadyExists(f"{what} '{entity.id}' already exists.",
                                details=[{"field": "id", "message": "taken"}]) from None

    # ---- MCP servers

    @api.route("manage/projects/{project}/mcp-servers", "POST", name="manage_create_mcp_server",
               summary="Register an MCP server (draft, unapproved): submit it to list its tools.", guard=admin,
               body=McpServerSpec, response=McpServer, status=201)
    async def create_server(call: Call):
        pid = await project_of(call)
        server = McpServer(id=call.body.id, project_id=pid, spec=call.body)
        await tools.registry.check_server(server)
        saved = await create(tools.registry.servers, server, "MCP server")
        tools.registry.changed(pid)
        return json_response(saved, 201, {"etag": saved.etag or ""})

    @api.route("manage/projects/{project}/mcp-servers", "GET", name="manage_list_mcp_servers",
               summary="List MCP servers.", guard=admin, response=ServerList)
    async def list_servers(call: Call):
        page = await tools.registry.servers.list(await project_of(call), limit=500)
        return ServerList(items=page.items, invalid=page.invalid)

    @api.route("manage/projects/{project}/mcp-servers/{server}", "GET", name="manage_get_mcp_server",
               summary="Get an MCP server.", guard=admin, response=McpServer)
    async def get_server(call: Call):
        s = await tools.registry.servers.get(call.path("project"), call.path("server"))
        return json_response(s, 200, {"etag": s.etag or ""})

    @api.route("manage/projects/{project}/mcp-servers/{server}", "PUT", name="manage_replace_mcp_server",
               summary="Replace an MCP server's definition. Changing its URL, transport, replicas or auth withdraws "
               "its approval until it is approved again.", guard=admin, body=McpServerSpec, response=McpServer,
               headers=IF_MATCH)
    async def replace_server(call: Call):
        pid, sid, spec = await project_of(call), call.path("server"), call.body
        same_id(sid, spec.id)
        await tools.registry.check_server(McpServer(id=sid, project_id=pid, spec=spec))

        def change(s: McpServer) -> None:
            if any(getattr(s.spec, f) != getattr(spec, f) for f in _IDENTITY_FIELDS):
                s.approval = "unsubmitted"
            s.spec = spec
        saved = await tools.registry.servers.update(pid, sid, change, if_match=call.req.headers.get("if-match"))
        tools.registry.changed(pid)
        return json_response(saved, 200, {"etag": saved.etag or ""})

    @api.route("manage/projects/{project}/mcp-servers/{server}/lifecycle", "POST",
               name="manage_mcp_server_lifecycle", summary="Move a server through draft → published → deprecated → "
               "retired, or suspend it (its tools stop being served at once).", guard=admin, body=LifecycleChange,
               response=McpServer)
    async def server_lifecycle(call: Call):
        pid = await project_of(call)
        saved = await tools.registry.servers.update(pid, call.path("server"),
                                                    lambda s: setattr(s, "lifecycle", call.body.state))
        tools.registry.changed(pid)
        return saved

    @api.route("manage/projects/{project}/mcp-servers/{server}", "DELETE", name="manage_delete_mcp_server",
               summary="Delete a server and its tools (refused while a toolbox lists them).", guard=admin,
               status=204, headers=IF_MATCH)
    async def delete_server(call: Call):
        pid, sid = await project_of(call), call.path("server")
        await tools.registry.servers.get(pid, sid)
        await tools.registry.ensure_unreferenced(pid, sid)
        await tools.registry.servers.delete(pid, sid, call.req.headers.get("if-match"))
        await tools.registry.delete_tools_of(pid, sid)
        return Response(status_code=204)

    # ---- API sources (OpenAPI → MCP)

    @api.route("manage/projects/{project}/api-sources", "POST", name="manage_create_api_source",
               summary="Register an OpenAPI 3.0/3.1 document (URL or inline) whose operations become tools once "
               "approved.", guard=admin, body=ApiSourceSpec, response=ApiSource, status=201)
    async def create_api_source(call: Call):
        pid = await project_of(call)
        source = ApiSource(id=call.body.id, project_id=pid, spec=call.body)
        await tools.registry.check_api_source(source)
        saved = await create(tools.registry.api_sources, source, "API source")
        return json_response(saved, 201, {"etag": saved.etag or ""})

    @api.route("manage/projects/{project}/api-sources", "GET", name="manage_list_api_sources",
               summary="List API sources.", guard=admin, response=ApiSourceList)
    async def list_api_sources(call: Call):
        page = await tools.registry.api_sources.list(await project_of(call), limit=500)
        return ApiSourceList(items=page.items, invalid=page.invalid)

    @api.route("manage/projects/{project}/api-sources/{source}", "GET", name="manage_get_api_source",
               summary="Get an API source.", guard=admin, response=ApiSource)
    async def get_api_source(call: Call):
        return await tools.registry.api_sources.get(call.path("project"), call.path("source"))

    @api.route("manage/projects/{project}/api-sources/{source}", "DELETE", name="manage_delete_api_source",
               summary="Delete an API source and its tools (refused while a toolbox lists them).", guard=admin,
               status=204)
    async def delete_api_source(call: Call):
        pid, sid = await project_of(call), call.path("source")
        await tools.registry.api_sources.get(pid, sid)
        await tools.registry.ensure_unreferenced(pid, sid)
        await tools.registry.api_sources.delete(pid, sid)
        await tools.registry.delete_tools_of(pid, sid)
        return Response(status_code=204)

    # ---- tools

    @api.route("manage/projects/{project}/tools", "GET", name="manage_list_tools",
               summary="Tools of the project's servers and API sources, with their status (a quarantined tool "
               "shows the diff of its upstream change).", guard=admin, response=ToolList,
               query=(("status", "pending | approved | quarantined | rejected"), ("server", "A server id.")))
    async def list_tools(call: Call):
        pid = await project_of(call)
        filters: dict[str, str] = {}
        if status := call.req.query_params.get("status"):
            if status not in ("pending", "approved", "quarantined", "rejected"):
                raise BadRequest("status must be pending, approved, quarantined or rejected.", code="invalid_query",
                                 details=[{"field": "status", "message": "unknown status"}])
            filters["status"] = status
        if server := call.req.query_params.get("server"):
            filters["server_id"] = server
        page = await tools.registry.tools.list(pid, limit=1000, **filters)
        return ToolList(items=[ToolOut.of(t) for t in page.items], invalid=page.invalid)

    @api.route("manage/projects/{project}/tools/{tool}", "GET", name="manage_get_tool",
               summary="Get a tool (with the diff when quarantined).", guard=admin, response=ToolOut)
    async def get_tool(call: Call):
        return ToolOut.of(await tools.registry.tools.get(call.path("project"), call.path("tool")))

    @api.route("manage/projects/{project}/tools/{tool}", "PATCH", name="manage_update_tool",
               summary="Mark a tool sensitive, set its limits (rate, timeout, result size) or tags.", guard=admin,
               body=ToolSettings, response=ToolOut)
    async def update_tool(call: Call):
        pid, body = await project_of(call), call.body

        def change(t: ToolDefinition) -> None:
            for key in ("sensitive", "limits", "tags"):
                if getattr(body, key) is not None:
                    setattr(t, key, getattr(body, key))
        saved = await tools.registry.tools.update(pid, call.path("tool"), change)
        tools.registry.changed(pid)
        return ToolOut.of(saved)

    @api.route("manage/projects/{project}/tools/{tool}/reapprove", "POST", name="manage_reapprove_tool",
               summary="Re-approve a quarantined tool: pin the upstream definition whose diff you reviewed.",
               guard=admin, body=ToolDecision, response=ToolOut)
    async def reapprove_tool(call: Call):
        pid = await project_of(call)
        actor = call.principal.subject if call.principal else "admin"
        saved = await tools.pinning.reapprove(pid, call.path("tool"), actor, call.body.reason,
                                              expected_hash=call.body.expected_hash)
        return ToolOut.of(saved)

    @api.route("manage/projects/{project}/tools/{tool}/reject", "POST", name="manage_reject_tool",
               summary="Reject a tool: it is never listed or callable until its server is approved again.",
               guard=admin, body=ToolDecision, response=ToolOut)
    async def reject_tool(call: Call):
        pid, name = await project_of(call), call.path("tool")
        actor = call.principal.subject if call.principal else "admin"

        def change(t: ToolDefinition) -> None:
            t.status, t.status_reason = "rejected", call.body.reason
        saved = await tools.registry.tools.update(pid, name, change)
        await tools.audit.record(pid, "tool_rejected", "mcp_tool", name, actor=actor, reason=call.body.reason)
        tools.registry.changed(pid)
        return ToolOut.of(saved)

    # ---- toolboxes

    @api.route("manage/projects/{project}/toolboxes", "POST", name="manage_create_toolbox",
               summary="Create a toolbox (a virtual MCP server at /mcp/{toolbox}) from the project's tools.",
               guard=admin, body=ToolboxCreate, response=Toolbox, status=201)
    async def create_toolbox(call: Call):
        pid, body = await project_of(call), call.body
        await tools.registry.check_toolbox(pid, body.tools)
        box = Toolbox(id=body.id, project_id=pid, spec=ToolboxSpec(**body.model_dump(exclude={"owner"})),
                      owner=body.owner)
        saved = await create(tools.registry.toolboxes, box, "Toolbox")
        tools.registry.changed(pid)
        return json_response(saved, 201, {"etag": saved.etag or ""})

    @api.route("manage/projects/{project}/toolboxes", "GET", name="manage_list_toolboxes",
               summary="List toolboxes (project and personal).", guard=admin, response=ToolboxList)
    async def list_toolboxes(call: Call):
        page = await tools.registry.toolboxes.list(await project_of(call), limit=1000)
        return ToolboxList(items=page.items, invalid=page.invalid)

    @api.route("manage/projects/{project}/toolboxes/{toolbox}", "PUT", name="manage_replace_toolbox",
               summary="Replace a toolbox's tools and description.", guard=admin, body=ToolboxSpec,
               response=Toolbox, headers=IF_MATCH)
    async def replace_toolbox(call: Call):
        pid, bid, spec = await project_of(call), call.path("toolbox"), call.body
        same_id(bid, spec.id)
        await tools.registry.check_toolbox(pid, spec.tools)
        saved = await tools.registry.toolboxes.update(pid, bid, lambda b: setattr(b, "spec", spec),
                                                      if_match=call.req.headers.get("if-match"))
        tools.registry.changed(pid)
        return json_response(saved, 200, {"etag": saved.etag or ""})

    @api.route("manage/projects/{project}/toolboxes/{toolbox}", "DELETE", name="manage_delete_toolbox",
               summary="Delete a toolbox.", guard=admin, status=204)
    async def delete_toolbox(call: Call):
        pid = await project_of(call)
        await tools.registry.toolboxes.delete(pid, call.path("toolbox"))
        tools.registry.changed(pid)
        return Response(status_code=204)

    return api
