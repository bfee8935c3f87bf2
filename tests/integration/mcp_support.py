"""Shared set-up of the MCP toolbox tests: five real servers, two gateway instances on one registry, seeding."""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.pillars.tools.domain import (McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox,
                                         ToolboxSpec, ToolLimits, namespaced_name)
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream
from shared.storage.cosmos import CosmosDocumentStore, make_cosmos_client
from shared.storage.repository import Repository
from shared.pillars.tools.pinning import definition_hash, definition_of
from tests.support.mcp_servers import Fleet

TRANSPORTS = {"memory": "sse", "filesystem": "stdio_bridge"}
APPROVED = {"everything": {"echo", "get-sum", "get-structured-content", "get-tiny-image", "simulate-research-query"}, "sdk": {"forecast", "shout", "book", "route"},
            "fastmcp": {"add", "wire_transfer", "big"}, "memory": {"read_graph", "create_entities"},
            "filesystem": {"read_text_file", "list_allowed_directories"}, "tasks": {"slow_report"}}
QUARANTINED = {"everything": {"get-env"}}


@dataclass
class Seeded:
    project: str
    toolbox: str
    tools: dict[str, list[str]] = field(default_factory=dict)  # server → namespaced names served
    hidden: list[str] = field(default_factory=list)  # registered but not servable (pending/quarantined)


async def upstream_tools(url: str, transport: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        up = McpUpstream(http, timeout=20, max_bytes=8 << 20)
        ep = Endpoint("probe", url, transport="sse" if transport == "sse" else "streamable_http")
        session = await up.connect(ep)
        return (await up.request(ep, session, "tools/list", {}))["tools"]


def definition(tool: dict[str, Any]) -> PinnedDefinition:
    return definition_of(tool)


def wait_submission(admin: httpx.Client, pid: str, sid: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = admin.get(f"/manage/projects/{pid}/submissions/{sid}").json()
        if body["state"] in ("probed", "approved", "rejected", "poisoned"):
            return body
        time.sleep(0.1)  # the approvals queue function probes asynchronously
    raise AssertionError(f"submission {sid} not probed in {timeout}s")


def register(admin: httpx.Client, project: str, fleet: Fleet, *, sensitive: set[str] = frozenset(),
             limits: dict[str, dict] = {}) -> Seeded:
    """Through the admin API, as an operator would: register each server, submit it, let the approvals queue
    probe it, approve; then reject what the toolbox must not serve, mark sensitive tools, build the toolbox."""
    base = f"/manage/projects/{project}"
    box = Seeded(project=project, toolbox="box-" + uuid.uuid4().hex[:6])
    submissions = {}
    for name, server in fleet.servers.items():
        r = admin.post(f"{base}/mcp-servers", json={"id": name, "url": server.url, "namespace": name,
                                                     "transport": TRANSPORTS.get(name, "streamable_http")})
        assert r.status_code == 201, r.text
        r = admin.post(f"{base}/submissions", json={"subject_kind": "mcp_server", "subject_id": name})
        assert r.status_code == 202, r.text
        submissions[name] = r.json()["id"]
    for name, sid in submissions.items():
        probed = wait_submission(admin, project, sid)
        assert probed["state"] == "probed" and probed["tools"], probed
        r = admin.post(f"{base}/submissions/{sid}/approve", json={"reason": "compatibility suite"})
        assert r.status_code == 200, r.text
        box.tools[name] = []
        for tool in probed["tools"]:
            full = namespaced_name(name, tool["name"])
            if tool["name"] in APPROVED[name]:
                box.tools[name].append(full)
            else:
                r = admin.post(f"{base}/tools/{full}/reject", json={"reason": "not in this toolbox's scope"})
                assert r.status_code == 200, r.text
                box.hidden.append(full)
    for full in sensitive | set(limits):
        body = {**({"sensitive": True} if full in sensitive else {}), **({"limits": limits[full]} if full in limits
                                                                          else {})}
        r = admin.patch(f"{base}/tools/{full}", json=body)
        assert r.status_code == 200, r.text
    every = [t for names in box.tools.values() for t in names] + box.hidden
    r = admin.post(f"{base}/toolboxes", json={"id": box.toolbox, "tools": every})
    assert r.status_code == 201, r.text
    return box


async def _probe_only_server(servers: Any, defs: Any, project: str, name: str, url: str) -> str:
    """An approved server with one approved `probe` tool, written straight into the registry; its tool's name."""
    await servers.create(McpServer(id=name, project_id=project, lifecycle="published", approval="approved",
                                   spec=McpServerSpec(id=name, url=url, namespace=name)))
    full, pinned = namespaced_name(name, "probe"), PinnedDefinition(name="probe")
    await defs.create(ToolDefinition(id=full, project_id=project, server_id=name, original_name="probe", name=full,
                                     definition=pinned, pinned_hash=definition_hash(pinned), status="approved"))
    return full


async def tamper(cosmos: str, database: str, project: str, box: Seeded, *, drifted: set[str],
                 unreachable: dict[str, str]) -> None:
    """What the admin API refuses on purpose, written straight into the registry: an approved definition the
    server has changed since (drift, caught at list time), and a server whose address is refused by the egress
    policy at connect time (as after DNS rebinding, or a document stored before the policy)."""
    store = CosmosDocumentStore(lambda: make_cosmos_client(connection_string=cosmos, endpoint=None, credential=None,
                                                           timeout=10), database, "registry",
                                create_if_missing=False, timeout=10)
    servers, defs, boxes = Repository(store, McpServer), Repository(store, ToolDefinition), Repository(store, Toolbox)
    try:
        for full in drifted:
            def change(t: ToolDefinition) -> None:
                t.definition = t.definition.model_copy(update={"description": "The approved description."})
                t.pinned_hash = definition_hash(t.definition)
            await defs.update(project, full, change)
        for name, url in unreachable.items():
            full = await _probe_only_server(servers, defs, project, name, url)
            box.tools[name] = [full]

            def add(b: Toolbox, full: str = full) -> None:
                b.spec = b.spec.model_copy(update={"tools": [*b.spec.tools, full]})
            await boxes.update(project, box.toolbox, add)
    finally:
        await store.close()


async def seed(cosmos: str, database: str, project: str, fleet: Fleet, *, extra_servers: dict[str, str] = {},
               sensitive: set[str] = frozenset(), limits: dict[str, ToolLimits] = {},
               drifted: set[str] = frozenset()) -> Seeded:
    store = CosmosDocumentStore(lambda: make_cosmos_client(connection_string=cosmos, endpoint=None, credential=None,
                                                           timeout=10), database, "registry",
                                create_if_missing=True, timeout=10)
    servers, defs, boxes = Repository(store, McpServer), Repository(store, ToolDefinition), Repository(store, Toolbox)
    box = Seeded(project=project, toolbox="box-" + uuid.uuid4().hex[:6])
    try:
        urls = {name: (s.url, TRANSPORTS.get(name, "streamable_http")) for name, s in fleet.servers.items()}
        listed = await asyncio.gather(*(upstream_tools(u, t) for u, t in urls.values()))
        for (name, (url, transport)), tools in zip(urls.items(), listed):
            await servers.create(McpServer(id=name, project_id=project, lifecycle="published", approval="approved",
                                           spec=McpServerSpec(id=name, url=url, namespace=name,
                                                              transport=transport)))
            box.tools[name] = []
            for tool in tools:
                full = namespaced_name(name, tool["name"])
                d = definition(tool)
                if full in drifted:  # approved as it was; the server has changed it since
                    d = d.model_copy(update={"description": "The approved description."})
                status = "approved" if tool["name"] in APPROVED[name] else (
                    "quarantined" if tool["name"] in QUARANTINED.get(name, ()) else "pending")
                await defs.create(ToolDefinition(
                    id=full, project_id=project, server_id=name, original_name=tool["name"], name=full,
                    definition=d, pinned_hash=definition_hash(d), status=status,
                    sensitive=full in sensitive, limits=limits.get(full, ToolLimits())))
                (box.tools[name] if status == "approved" else box.hidden).append(full)
        for name, url in extra_servers.items():  # servers that must be refused at call time (SSRF)
            box.tools[name] = [await _probe_only_server(servers, defs, project, name, url)]
        every = [t for names in box.tools.values() for t in names] + box.hidden
        await boxes.create(Toolbox(id=box.toolbox, project_id=project, spec=ToolboxSpec(id=box.toolbox, tools=every)))
    finally:
        await store.close()
    return box
