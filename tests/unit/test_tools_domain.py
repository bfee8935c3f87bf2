"""Tools registry contracts and the ToolDirectory rules (memory and registry-backed)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.auth.principal import Principal, Role
from shared.errors import DependencyUnavailable, Forbidden, NotFound
from shared.pillars.tools.directory import MemoryToolDirectory, RegistryToolDirectory
from shared.pillars.tools.domain import (
    ApiSource, McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox, ToolboxOwner, ToolboxSpec,
    UpstreamSecretAuth, namespaced_name)
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

P = "proj-a"
HASH = "sha256:" + "0" * 64


def server(id: str = "gh", ns: str = "gh", **kw) -> McpServer:
    return McpServer(id=id, project_id=P, spec=McpServerSpec(id=id, url="https://mcp.example.com/mcp",
                                                            namespace=ns),
                     **{"lifecycle": "published", "approval": "approved", **kw})


def tool(name: str, server_id: str = "gh", status: str = "approved", **kw) -> ToolDefinition:
    full = namespaced_name("gh", name)
    return ToolDefinition(id=full, project_id=P, server_id=server_id, original_name=name, name=full,
                          definition=PinnedDefinition(name=name), pinned_hash=HASH, status=status, **kw)


def box(tools: list[str], owner: ToolboxOwner | None = None, id: str = "dev") -> Toolbox:
    return Toolbox(id=id, project_id=P, spec=ToolboxSpec(id=id, tools=tools), owner=owner or ToolboxOwner())


def key(project: str = P, subject: str = "k1", **kw) -> Principal:
    return Principal(kind="virtual_key", subject=subject, project_id=project, key_id=subject, **kw)


def test_namespaced_names_stay_within_mcp_limits_and_distinct():
    assert namespaced_name("gh", "create_issue") == "gh__create_issue"
    assert namespaced_name("gh", "files/read.v2") == "gh__files-read-v2"
    a, b = namespaced_name("gh", "x" * 100 + "a"), namespaced_name("gh", "x" * 100 + "b")
    assert len(a) == len(b) == 64 and a != b


def test_upstream_secret_auth_refuses_other_settings_and_gateway_headers():
    with pytest.raises(ValidationError):
        UpstreamSecretAuth(setting="GATEWAY_ADMIN_KEY")
    with pytest.raises(ValidationError):
        UpstreamSecretAuth(setting="UPSTREAM_SECRET_X", header="Mcp-Session-Id")
    assert UpstreamSecretAuth(setting="UPSTREAM_SECRET_X", header="X-Api-Key").header == "x-api-key"


def test_server_targets_primary_first_and_replica_ids_unique():
    s = McpServerSpec(id="gh", url="https://a.example/mcp", namespace="gh",
                      replicas=[{"id": "r1", "url": "https://b.example/mcp", "priority": 1}])
    assert [t.id for t in McpServer(id="gh", project_id=P, spec=s).targets()] == ["primary", "r1"]
    with pytest.raises(ValidationError):
        McpServerSpec(id="gh", url="https://a.example/mcp", namespace="gh",
                      replicas=[{"id": "primary", "url": "https://b.example/mcp"}])


def test_personal_toolbox_names_its_owner():
    with pytest.raises(ValidationError):
        ToolboxOwner(type="personal")
    with pytest.raises(ValidationError):
        ToolboxOwner(type="project", subject="alice")


async def test_only_approved_tools_of_approved_published_servers_are_listed():
    d = MemoryToolDirectory().add(
        server(), server("other", "ot", lifecycle="draft"),
        tool("ok"), tool("q", status="quarantined"), tool("p", status="pending"),
        ToolDefinition(id="ot__t", project_id=P, server_id="other", original_name="t", name="ot__t",
                       definition=PinnedDefinition(name="t"), pinned_hash=HASH, status="approved"),
        box(["gh__ok", "gh__q", "gh__p", "ot__t", "gh__missing"]))
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__ok"]
    for name in ("gh__q", "gh__p", "ot__t", "gh__missing"):
        with pytest.raises(NotFound):
            await d.resolve(key(), P, "dev", name)
    resolved = await d.resolve(key(), P, "dev", "gh__ok")
    assert resolved.server is not None and resolved.targets[0].id == "primary"


async def test_a_tool_outside_the_toolbox_is_not_resolvable():
    d = MemoryToolDirectory().add(server(), tool("a"), tool("b"), box(["gh__a"]))
    with pytest.raises(NotFound):
        await d.resolve(key(), P, "dev", "gh__b")


async def test_key_allow_list_filters_and_refuses():
    d = MemoryToolDirectory().add(server(), tool("a"), tool("b"), box(["gh__a", "gh__b"]))
    limited = key()
    object.__setattr__(limited, "allowed_tools", frozenset({"gh__a"}))
    assert [t.name for t in await d.list_tools(limited, P, "dev")] == ["gh__a"]
    with pytest.raises(Forbidden):
        await d.resolve(limited, P, "dev", "gh__b")


async def test_toolbox_of_another_project_or_another_developer_is_not_found():
    d = MemoryToolDirectory().add(server(), tool("a"), box(["gh__a"]),
                                  box(["gh__a"], ToolboxOwner(type="personal", subject="alice"), id="mine"))
    with pytest.raises(NotFound):
        await d.list_tools(key(project="proj-b"), P, "dev")
    with pytest.raises(NotFound):
        await d.list_tools(key(owner="bob"), P, "mine")
    with pytest.raises(NotFound):  # a key's subject is its id: a key named like a person is not that person
        await d.list_tools(key(subject="alice"), P, "mine")
    assert await d.list_tools(key(owner="alice"), P, "mine")  # a key issued to alice opens her toolbox
    assert await d.list_tools(Principal(kind="entra", subject="alice"), P, "mine")
    admin = Principal(kind="admin_key", subject="admin", roles=frozenset({Role.admin}))
    assert await d.list_tools(admin, P, "mine")


async def test_a_self_service_key_carries_its_owner_into_the_principal():
    """What the key check hands the data plane: `owner` from the key's `metadata.owner` (the credentials API writes
    it from the developer's own subject); a key without one has none."""
    from shared.auth.keys import KeyService
    from shared.domain.keys import KeyCreate, VirtualKey

    service = KeyService(Repository(MemoryDocumentStore(), VirtualKey), pepper=b"pepper-0123456789abcdef", ttl=30,
                         max_stale=60)
    _, mine = await service.issue(P, KeyCreate(name="mine", metadata={"owner": "alice"}))
    _, plain = await service.issue(P, KeyCreate(name="plain"))
    owned, unowned = await service.authenticate(mine), await service.authenticate(plain)
    assert (owned.owner, unowned.owner) == ("alice", None)
    d = MemoryToolDirectory().add(server(), tool("a"),
                                  box(["gh__a"], ToolboxOwner(type="personal", subject="alice"), id="mine"))
    assert await d.list_tools(owned, P, "mine")
    with pytest.raises(NotFound):
        await d.list_tools(unowned, P, "mine")


async def test_registry_directory_caches_invalidates_and_fails_static():
    store, now = MemoryDocumentStore(), [0.0]
    for entity, cls in ((server(), McpServer), (tool("a"), ToolDefinition), (box(["gh__a", "gh__b"]), Toolbox)):
        await Repository(store, cls).create(entity)
    d = RegistryToolDirectory(store, ttl=5, max_stale=60, clock=lambda: now[0])
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__a"]
    await Repository(store, ToolDefinition).create(tool("b"))
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__a"]  # cached
    d.invalidate(P)
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__a", "gh__b"]
    store.available = False
    now[0] = 30.0  # past the TTL, inside max_stale: the last good snapshot is served
    assert len(await d.list_tools(key(), P, "dev")) == 2
    now[0] = 200.0
    with pytest.raises(DependencyUnavailable):
        await d.list_tools(key(), P, "dev")


async def test_a_broken_stored_tool_does_not_hide_its_neighbours():
    store = MemoryDocumentStore()
    await Repository(store, McpServer).create(server())
    await Repository(store, Toolbox).create(box(["gh__a", "gh__b"]))
    await Repository(store, ToolDefinition).create(tool("a"))
    bad = tool("b").to_document()
    bad["name"] = "no namespace!"
    await store.create(bad)
    d = RegistryToolDirectory(store, ttl=5, max_stale=60)
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__a"]


async def test_a_project_snapshot_is_read_with_one_query_for_its_four_kinds():
    store = MemoryDocumentStore()
    await Repository(store, McpServer).create(server())
    await Repository(store, Toolbox).create(box(["gh__a"]))
    await Repository(store, ToolDefinition).create(tool("a"))
    kinds: list[object] = []
    real = store.query

    async def counted(q, limit, cursor=None):  # noqa: ANN001
        kinds.append(q.kind)
        return await real(q, limit, cursor)

    store.query = counted  # type: ignore[method-assign]
    d = RegistryToolDirectory(store, ttl=5, max_stale=60)
    assert [t.name for t in await d.list_tools(key(), P, "dev")] == ["gh__a"]
    assert kinds == [(McpServer.kind, ApiSource.kind, ToolDefinition.kind, Toolbox.kind)]  # one round trip
