"""Build with tools: the catalog of tools a developer may use, a toolbox builder (personal toolboxes from those
tools), a playground that calls a tool and shows the governance trace, and submitting servers/APIs for approval
with status tracking."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator
from starlette.responses import Response

from shared.auth.owned_keys import acting_as
from shared.auth.principal import Principal, Role
from shared.domain.base import AppModel, Contract, Pillar
from shared.domain.keys import VirtualKey
from shared.errors import AlreadyExists, NotFound, ValidationFailed
from shared.pillars.tools.directory import ProjectTools
from shared.pillars.tools.domain import (
    NAMESPACED_NAME_PATTERN, ApiSource, ApiSourceSpec, McpServer, McpServerSpec, NoAuth, Toolbox, ToolboxOwner,
    ToolboxSpec, ToolDefinition)
from shared.pillars.tools.playground import Playground, PlaygroundResult
from shared.registry.projects import ProjectRegistry
from shared.storage.repository import Repository
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.responses import json_response

from .tools_approvals import LIST_QUERY, SubmissionList, SubmissionOut, submissions_of

if TYPE_CHECKING:  # only for types: the pillar loads on first use
    from shared.pillars.tools.wiring import ToolsPillar


class CatalogTool(AppModel):
    name: str
    namespace: str
    title: str | None
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    annotations: dict[str, Any] | None
    tags: list[str]
    server: str
    source: str
    sensitive: bool


class Catalog(AppModel):
    items: list[CatalogTool]


class Toolboxes(AppModel):
    items: list[Toolbox]


class PlaygroundCall(Contract):
    key_id: str = Field(min_length=1, max_length=128, description=(
        "One of your own virtual keys in this project: the call is governed as that key's (its tool allow-list, "
        "quotas and request-log row), exactly as a client using it at /mcp/{toolbox} would be."))
    toolbox: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    tool: str = Field(pattern=NAMESPACED_NAME_PATTERN)
    arguments: dict[str, Any] = Field(default_factory=dict)


_NO_CREDENTIALS = ("A developer's submission carries no outbound credentials: the probe and every later call would "
                   "hand the gateway's own secrets or tokens to a URL the developer chose. An admin attaches "
                   "outbound auth after review (PUT /manage/projects/{project}/mcp-servers/{id}: that withdraws the "
                   "approval until the server is submitted, probed and approved again).")


def _no_credentials(value: Any) -> Any:
    if isinstance(value, dict) and value.get("type", "none") != "none":
        raise ValueError("outbound auth is attached by an admin after review; submit with {\"type\": \"none\"}")
    return value


class SubmittedServer(McpServerSpec):
    """An MCP server as a developer submits it: everything an admin may register, except outbound auth."""

    auth: NoAuth = Field(default_factory=NoAuth, description=_NO_CREDENTIALS)
    _auth = field_validator("auth", mode="before")(_no_credentials)


class SubmittedApi(ApiSourceSpec):
    """An OpenAPI source as a developer submits it: everything an admin may register, except outbound auth."""

    auth: NoAuth = Field(default_factory=NoAuth, description=_NO_CREDENTIALS)
    _auth = field_validator("auth", mode="before")(_no_credentials)


class DeveloperSubmission(Contract):
    mcp_server: SubmittedServer | None = None
    api_source: SubmittedApi | None = None
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _one(self) -> "DeveloperSubmission":
        if (self.mcp_server is None) == (self.api_source is None):
            raise ValueError("give exactly one of mcp_server and api_source")
        return self


def _tags(snap: ProjectTools, tool: ToolDefinition) -> list[str]:
    """The tool's own tags, then those its server or API source was registered with (`spec.tags`)."""
    source = snap.api_sources.get(tool.server_id) if tool.source == "api" else snap.servers.get(tool.server_id)
    return list(dict.fromkeys([*tool.tags, *(source.spec.tags if source is not None else [])]))


def catalog_of(snap: ProjectTools, q: str, namespace: str | None, tag: str | None) -> list[CatalogTool]:
    out = []
    for t in sorted(snap.tools.values(), key=lambda t: t.name):
        if not snap.servable(t):
            continue
        text = f"{t.name} {t.definition.title or ''} {t.definition.description or ''}".lower()
        tags = _tags(snap, t)
        if (q and q not in text) or (namespace and t.namespace != namespace) or (tag and tag not in tags):
            continue
        d = t.definition
        out.append(CatalogTool(name=t.name, namespace=t.namespace, title=d.title, description=d.description,
                               input_schema=d.input_schema, output_schema=d.output_schema, annotations=d.annotations,
                               tags=tags, server=t.server_id, source=t.source, sensitive=t.sensitive))
    return out


def build(tools: ToolsPillar, projects: ProjectRegistry, keys: Repository[VirtualKey], developer: Guard, *,
          max_body_bytes: int) -> ApiBlueprint:
    api = ApiBlueprint("tools-portal", max_body_bytes=max_body_bytes)
    listing = submissions_of(tools)

    async def project_of(call: Call) -> str:
        return await projects.require(call.path("project"))

    def me(call: Call) -> Principal:
        assert call.principal is not None
        return call.principal

    async def own_box(pid: str, call: Call) -> Toolbox:
        box = await tools.registry.toolboxes.find(pid, call.path("toolbox"))
        if box is None or box.owner.type != "personal" or box.owner.subject != me(call).subject:
            raise NotFound(f"personal toolbox '{call.path('toolbox')}' does not exist.", code="toolbox_not_found")
        return box

    async def usable(pid: str, names: list[str]) -> None:
        snap = await tools.registry.snapshot(pid)
        bad = [n for n in names if n not in snap.tools or not snap.servable(snap.tools[n])]
        if bad:
            raise ValidationFailed("A toolbox can only hold approved tools of the project.",
                                   details=[{"field": "tools", "message": f"'{n}' is not an approved tool"}
                                            for n in bad])
        tools.registry.changed(pid)

    @api.route("portal/projects/{project}/tools", "GET", name="portal_tool_catalog",
               summary="Approved tools of the project: search by name/description, namespace or tag.",
               guard=developer, response=Catalog,
               query=(("q", "Text in the name, title or description."), ("namespace", "A namespace."),
                      ("tag", "A tag.")))
    async def catalog(call: Call):
        pid = await project_of(call)
        qp = call.req.query_params
        snap = await tools.directory.snapshot(pid)
        return Catalog(items=catalog_of(snap, (qp.get("q") or "").lower()[:200], qp.get("namespace"),
                                        qp.get("tag")))

    @api.route("portal/projects/{project}/toolboxes", "GET", name="portal_list_toolboxes",
               summary="The project's toolboxes and your personal ones.", guard=developer, response=Toolboxes)
    async def list_boxes(call: Call):
        page = await tools.registry.toolboxes.list(await project_of(call), limit=1000)
        subject = me(call).subject
        return Toolboxes(items=[b for b in page.items if b.owner.type == "project" or b.owner.subject == subject])

    @api.route("portal/projects/{project}/toolboxes", "POST", name="portal_create_toolbox",
               summary="Build a personal toolbox from approved tools; use it at /mcp/{toolbox}.", guard=developer,
               body=ToolboxSpec, response=Toolbox, status=201)
    async def create_box(call: Call):
        pid = await project_of(call)
        await usable(pid, call.body.tools)
        box = Toolbox(id=call.body.id, project_id=pid, spec=call.body,
                      owner=ToolboxOwner(type="personal", subject=me(call).subject))
        try:
            saved = await tools.registry.toolboxes.create(box)
        except AlreadyExists:
            raise AlreadyExists(f"Toolbox '{box.id}' already exists in this project.", code="id_taken",
                                details=[{"field": "id", "message": "taken"}]) from None
        return json_response(saved, 201, {"etag": saved.etag or ""})

    @api.route("portal/projects/{project}/toolboxes/{toolbox}", "PUT", name="portal_replace_toolbox",
               summary="Change the tools of one of your personal toolboxes.", guard=developer, body=ToolboxSpec,
               response=Toolbox)
    async def replace_box(call: Call):
        pid = await project_of(call)
        box = await own_box(pid, call)
        if call.body.id != box.id:
            raise ValidationFailed("The id in the body must match the URL.",
                                   details=[{"field": "id", "message": f"expected '{box.id}'"}])
        await usable(pid, call.body.tools)
        return await tools.registry.toolboxes.update(pid, box.id, lambda b: setattr(b, "spec", call.body))

    @api.route("portal/projects/{project}/toolboxes/{toolbox}", "DELETE", name="portal_delete_toolbox",
               summary="Delete one of your personal toolboxes.", guard=developer, status=204)
    async def delete_box(call: Call):
        pid = await project_of(call)
        box = await own_box(pid, call)
        await tools.registry.toolboxes.delete(pid, box.id)
        tools.registry.changed(pid)
        return Response(status_code=204)

    @api.route("portal/projects/{project}/playground", "POST", name="portal_tool_playground",
               summary="Call a tool of a toolbox with arguments; see the result and the governance trace.",
               guard=developer, body=PlaygroundCall, response=PlaygroundResult)
    async def playground(call: Call):
        pid, b = await project_of(call), call.body
        # the developer's own key, as the data-plane guard would see it (the tools pillar must be on)
        caller = await acting_as(keys, tools.deps.flags, me(call), pid, b.key_id, Pillar.tools)
        return await Playground(tools.mcp.server).run(caller, pid, b.toolbox, b.tool, b.arguments, call.request_id)

    @api.route("portal/projects/{project}/submissions", "POST", name="portal_submit_tools",
               summary="Submit an MCP server or an OpenAPI document: registered as a draft and queued for "
               "approval.", guard=developer, body=DeveloperSubmission, response=SubmissionOut, status=202)
    async def submit(call: Call):
        pid, b, who = await project_of(call), call.body, me(call).subject
        if b.mcp_server is not None:
            spec = McpServerSpec.model_validate(b.mcp_server.model_dump())  # stored as the admin contract
            server = McpServer(id=spec.id, project_id=pid, spec=spec, submitted_by=who)
            await tools.registry.check_server(server)
            await tools.registry.servers.create(server)
            kind, sid = "mcp_server", server.id
        else:
            assert b.api_source is not None
            api = ApiSourceSpec.model_validate(b.api_source.model_dump())
            source = ApiSource(id=api.id, project_id=pid, spec=api, submitted_by=who)
            await tools.registry.check_api_source(source)
            await tools.registry.api_sources.create(source)
            kind, sid = "api_source", source.id
        s = await tools.approvals.submit(pid, kind, sid, who, b.note)
        return SubmissionOut.of(s, tools.audit.clock())

    @api.route("portal/projects/{project}/submissions", "GET", name="portal_list_submissions",
               summary="Your submissions and their status.", guard=developer, response=SubmissionList,
               query=LIST_QUERY)
    async def my_submissions(call: Call):
        return await listing(await project_of(call), call, submitted_by=me(call).subject)

    @api.route("portal/projects/{project}/submissions/{submission}", "GET", name="portal_get_submission",
               summary="One of your submissions: state, history and findings.", guard=developer,
               response=SubmissionOut)
    async def my_submission(call: Call):
        s = await tools.approvals.get(await project_of(call), call.path("submission"))
        if s.submitted_by != me(call).subject and not me(call).has(Role.admin):
            raise NotFound(f"submission '{s.id}' does not exist.", code="submission_not_found")
        return SubmissionOut.of(s, tools.audit.clock())

    return api
