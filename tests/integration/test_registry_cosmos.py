"""The registry against the real Cosmos wire-protocol server: CRUD, paging, ETags, project isolation."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from dev.emulators import Emulators
from shared.domain.keys import VirtualKey
from shared.domain.projects import Project
from shared.errors import AlreadyExists, BadRequest, ConcurrentUpdate, NotFound, PreconditionFailed
from shared.storage.cosmos import CosmosDocumentStore, make_cosmos_client
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


@pytest.fixture(params=["cosmos", "memory"])
async def store(request, emulators: Emulators):
    if request.param == "memory":  # the unit-test double must keep the same contract
        yield MemoryDocumentStore()
        return
    s = CosmosDocumentStore(
        lambda: make_cosmos_client(connection_string=emulators.cosmos_connection_string, endpoint=None,
                                   credential=None, timeout=5),
        "reg-" + uuid.uuid4().hex[:8], "registry", create_if_missing=True, timeout=5)
    yield s
    await s.close()


def key(project: str, name: str) -> VirtualKey:
    return VirtualKey(id=name, project_id=project, name=name, prefix="sk-gw-x", hash=uuid.uuid4().hex)


async def test_crud_roundtrip(store):
    repo = Repository(store, Project)
    created = await repo.create(Project(id="alpha", name="Alpha"))
    assert created.etag and created.project_id == "alpha"
    with pytest.raises(AlreadyExists):
        await repo.create(Project(id="alpha", name="again"))
    got = await repo.get("alpha", "alpha")
    assert got.name == "Alpha" and got.etag == created.etag
    got.name = "Alpha 2"
    replaced = await repo.replace(got)
    assert replaced.etag != created.etag and (await repo.get("alpha", "alpha")).name == "Alpha 2"
    await repo.delete("alpha", "alpha")
    assert await repo.find("alpha", "alpha") is None
    with pytest.raises(NotFound):
        await repo.get("alpha", "alpha")
    with pytest.raises(NotFound):
        await repo.delete("alpha", "alpha")


async def test_etag_conflict_is_never_a_silent_overwrite(store):
    repo = Repository(store, Project)
    await repo.create(Project(id="beta", name="Beta"))
    a, b = await repo.get("beta", "beta"), await repo.get("beta", "beta")
    a.name = "from A"
    await repo.replace(a)
    b.name = "from B"
    with pytest.raises(PreconditionFailed):
        await repo.replace(b)  # B read the old version
    assert (await repo.get("beta", "beta")).name == "from A"
    with pytest.raises(PreconditionFailed):
        await repo.update("beta", "beta", lambda p: setattr(p, "name", "x"), if_match='"stale"')
    with pytest.raises(PreconditionFailed):
        await repo.delete("beta", "beta", '"stale"')


async def test_concurrent_updates_without_if_match_conflict(store):
    repo = Repository(store, Project)
    await repo.create(Project(id="gamma", name="G"))
    gate = asyncio.Event()

    async def change(p: Project) -> None:
        p.description = "changed"
        await gate.wait()  # both writers have read the same version before either writes

    async def writer():
        return await repo.update("gamma", "gamma", change)

    tasks = [asyncio.create_task(writer()) for _ in range(2)]
    await asyncio.sleep(0.2)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, Project) for r in results) == 1
    assert sum(isinstance(r, ConcurrentUpdate) for r in results) == 1


async def test_paging_and_project_isolation(store):
    repo = Repository(store, VirtualKey)
    for i in range(7):
        await repo.create(key("p1", f"k{i}"))
    await repo.create(key("p2", "k0"))  # same id, other project: a different document
    seen, cursor, pages = [], None, 0
    while True:
        page = await repo.list("p1", limit=3, cursor=cursor)
        seen += [k.id for k in page.items]
        pages += 1
        assert all(k.project_id == "p1" for k in page.items)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == [f"k{i}" for i in range(7)] and pages == 3
    assert [k.id for k in (await repo.list("p2")).items] == ["k0"]
    assert await repo.find("p2", "k1") is None
    assert len((await repo.list(None, limit=100)).items) == 8  # across projects
    # other kinds in the same partition are not returned
    assert (await Repository(store, Project).list("p1")).items == []
    with pytest.raises(BadRequest):
        await repo.list("p1", cursor="%%%not-a-cursor")


async def test_several_kinds_are_read_in_one_paged_query_each_checked_against_its_own_contract(store):
    from shared.domain.quotas import Quota, QuotaLimits
    from shared.storage.repository import load_kinds

    keys, quotas = Repository(store, VirtualKey), Repository(store, Quota)
    for i in range(4):
        await keys.create(key("p1", f"k{i}"))
    await quotas.create(Quota(id="q1", project_id="p1", scope="project", target="p1",
                              limits=QuotaLimits(requests_per_minute=5)))
    await keys.create(key("p2", "k9"))  # another project: not read
    await Repository(store, Project).create(Project(id="p1", name="p1"))  # a kind not asked for: not read
    broken = key("p1", "kx").to_document()
    broken["prefix"] = 7  # stored, but no longer a valid key: skipped, its neighbours still read
    await store.create(broken)
    calls = 0
    real = store.query

    async def counted(q, limit, cursor=None):
        nonlocal calls
        calls += 1
        return await real(q, limit, cursor)

    store.query = counted  # type: ignore[method-assign]
    found = await load_kinds(store, "p1", [keys, quotas], page=2)  # pages of 2: the kinds interleave across pages
    assert sorted(found[VirtualKey.kind]) == ["k0", "k1", "k2", "k3"] and list(found[Quota.kind]) == ["q1"]
    assert calls == 3  # 6 documents of either kind, 2 per page: one query's pages, not one query per kind
