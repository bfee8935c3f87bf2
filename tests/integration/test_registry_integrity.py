"""Registry integrity against the real Cosmos server and the in-memory double (same contract): the kind is
checked on every read and delete, a document that no longer validates never takes its neighbours down, non-finite
numbers are refused as bad input (not as an outage), and a project purge is safe to interrupt and run again."""
from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from shared.domain.keys import VirtualKey
from shared.pillars.models.domain import Model, ModelSpec
from shared.domain.projects import Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.errors import (AlreadyExists, Conflict, DependencyUnavailable, InvalidStoredDocument, NotFound,
                           PreconditionFailed, ValidationFailed)
from shared.storage.purge import purge_project
from shared.storage.repository import Repository
from tests.integration.test_registry_cosmos import store  # noqa: F401 - the cosmos/memory store fixture

SPEC = {"name": "x", "backends": [{"id": "a", "kind": "openai", "endpoint": "https://api.openai.com/v1",
                                   "deployment": "gpt-4o"}]}


def model(project: str, name: str, **spec: Any) -> Model:
    return Model(id=name, project_id=project, spec=ModelSpec.model_validate({**SPEC, "name": name, **spec}))


def vkey(project: str, id: str, **extra: Any) -> VirtualKey:
    return VirtualKey(id=id, project_id=project, name=id, prefix="sk-gw-x", hash="h-" + id, lookup=["h-" + id],
                      **extra)


def raw_model(project: str, name: str, **spec: Any) -> dict[str, Any]:
    """A model document as an older version (or a hand edit) could have stored it: no contract check."""
    doc = model(project, name).to_document()
    doc["spec"].update(spec)
    return doc


class Repos:
    def __init__(self, store) -> None:  # noqa: F811
        self.projects = Repository(store, Project)
        self.models = Repository(store, Model)
        self.keys = Repository(store, VirtualKey)
        self.quotas = Repository(store, Quota)

    @property
    def owned(self) -> list[Repository[Any]]:
        return [self.keys, self.models, self.quotas]


# ---- item 4: one bad document must not break a project


async def test_invalid_document_is_skipped_logged_and_listed_as_invalid(store, caplog):  # noqa: F811
    r = Repos(store)
    await r.models.create(model("p1", "good-a"))
    await store.create(raw_model("p1", "bad", context_window=10**22))  # Cosmos hands it back as the float 1e22
    await store.create(raw_model("p1", "bad-2", priority="high"))
    await r.models.create(model("p1", "good-b"))
    with caplog.at_level(logging.WARNING, logger="gateway.registry"):
        page = await r.models.list("p1")
    assert [m.id for m in page.items] == ["good-a", "good-b"]
    assert sorted(b.id for b in page.invalid) == ["bad", "bad-2"]
    bad = next(b for b in page.invalid if b.id == "bad")
    assert bad.kind == "model" and bad.project_id == "p1" and bad.errors[0]["field"] == "spec.context_window"
    assert any("kind=model id=bad " in rec.getMessage() for rec in caplog.records)
    with pytest.raises(InvalidStoredDocument) as err:  # a point read: structured 409, not a 500
        await r.models.get("p1", "bad")
    assert err.value.status == 409 and err.value.details["errors"][0]["field"] == "spec.context_window"
    await r.models.delete("p1", "bad")  # how an admin repairs it
    assert [b.id for b in (await r.models.list("p1")).invalid] == ["bad-2"]
    with pytest.raises(PreconditionFailed):  # …or rewrites it, never blindly
        await r.models.rewrite(model("p1", "bad-2"), if_match='"stale"')
    repaired = await r.models.rewrite(model("p1", "bad-2"))
    assert repaired.spec.backends[0].priority == 0 and (await r.models.list("p1")).invalid == []


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
async def test_non_finite_numbers_are_bad_input_not_an_outage(store, value):  # noqa: F811
    doc = raw_model("p1", "m", input_price_per_1k=value)
    with pytest.raises(ValidationFailed) as err:
        await store.create(doc)
    assert not isinstance(err.value, DependencyUnavailable)
    assert err.value.details[0]["field"] == "spec.input_price_per_1k"
    assert await store.read("p1", "m") is None  # nothing written
    created = await Repository(store, Model).create(model("p1", "m"))
    created.spec.output_price_per_1k = value  # no contract check on assignment of a nested field
    with pytest.raises(ValidationFailed):
        await Repository(store, Model).replace(created)


# ---- item 8: the kind is checked on every read, write and delete


async def test_delete_and_read_check_the_kind(store):  # noqa: F811
    r = Repos(store)
    await r.projects.create(Project(id="proj-1", name="P"))
    await r.models.create(model("proj-1", "gpt-4.1"))
    await r.keys.create(vkey("proj-1", "0123456789abcdef"))
    # DELETE …/quotas/gpt-4/1 used to build the id "gpt-4.1": the model's id
    with pytest.raises(NotFound):
        await r.quotas.delete("proj-1", Quota.doc_id("gpt-4", "1"))
    with pytest.raises(NotFound):  # DELETE …/models/<key id>
        await r.models.delete("proj-1", "0123456789abcdef")
    with pytest.raises(NotFound):  # DELETE …/models/<project id>
        await r.models.delete("proj-1", "proj-1")
    assert await r.models.find("proj-1", "gpt-4.1") is not None
    assert await r.keys.find("proj-1", "0123456789abcdef") is not None
    assert await r.projects.find("proj-1", "proj-1") is not None
    assert await r.models.find("proj-1", "proj-1") is None  # reads are kind-checked too
    with pytest.raises(NotFound):  # and so are writes (read-modify-write)
        await r.models.update("proj-1", "0123456789abcdef", lambda m: None)
    key_doc = await r.keys.get("proj-1", "0123456789abcdef")
    impostor = model("proj-1", "0123456789abcdef")
    impostor.etag = key_doc.etag  # the right version, the wrong kind
    with pytest.raises(NotFound):
        await r.models.replace(impostor)
    assert (await r.keys.get("proj-1", "0123456789abcdef")).etag == key_doc.etag
    with pytest.raises(AlreadyExists) as err:  # a create never lands on another kind's id
        await r.models.create(model("proj-1", "proj-1"))
    assert err.value.code == "id_taken"


# ---- item 14: purge a project with everything it owns; safe to interrupt and run again


class FailingDeletes:
    """The real store, but the `fail_at`-th delete raises as an outage would."""

    def __init__(self, inner, fail_at: int) -> None:
        self._inner, self._left = inner, fail_at

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def delete(self, partition: str, id: str, etag: str | None = None) -> None:
        self._left -= 1
        if self._left == 0:
            raise DependencyUnavailable("simulated outage")
        await self._inner.delete(partition, id, etag)


async def seed(r: Repos, store, pid: str) -> None:  # noqa: F811
    await r.projects.create(Project(id=pid, name=pid, pillars={"models": {"enabled": True}}))
    for i in range(3):
        await r.models.create(model(pid, f"m{i}"))
        await r.keys.create(vkey(pid, f"k{i}", revoked_at=None))
    await r.quotas.create(Quota(id=Quota.doc_id("project", pid), project_id=pid, scope="project", target=pid,
                                limits=QuotaLimits(tokens_per_day=10)))
    await store.create(raw_model(pid, "broken", weight=0))  # invalid documents are owned too


async def test_purge_is_safe_to_interrupt_and_run_again(store):  # noqa: F811
    r = Repos(store)
    await seed(r, store, "doomed")
    await r.projects.create(Project(id="other", name="other"))
    await r.models.create(model("other", "m0"))
    failing = Repos(FailingDeletes(store, fail_at=4))
    with pytest.raises(DependencyUnavailable):
        await purge_project(failing.projects, failing.owned, "doomed")
    left = await r.projects.get("doomed", "doomed")  # interrupted: still there, but serving nothing
    assert not any(state.enabled for state in left.pillars.values())
    assert await r.keys.find("doomed", "k0") is None and await r.models.find("doomed", "m0") is not None
    forgotten: list[str] = []
    counts = await purge_project(r.projects, r.owned, "doomed", on_delete=lambda e: forgotten.append(e.id))
    assert counts == {"virtual_key": 0, "model": 4, "quota": 1}  # the rest: keys went in the first run
    assert sorted(forgotten) == ["m0", "m1", "m2", Quota.doc_id("project", "doomed")]
    assert await r.projects.find("doomed", "doomed") is None
    for repo in r.owned:
        page = await repo.list("doomed")
        assert page.items == [] and page.invalid == []
    assert await r.models.find("other", "m0") is not None  # its neighbour is untouched
    with pytest.raises(NotFound):
        await purge_project(r.projects, r.owned, "doomed")


class DeletesLie:
    """A store whose deletes report "already gone" but keep the document: the purge must stop, not spin."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def delete(self, partition: str, id: str, etag: str | None = None) -> None:
        raise NotFound("gone")


async def test_purge_never_loops_forever(store):  # noqa: F811
    r = Repos(store)
    await seed(r, store, "stuck")
    lying = Repos(DeletesLie(store))
    with pytest.raises(Conflict) as err:
        await purge_project(lying.projects, lying.owned, "stuck")
    assert err.value.code == "project_not_empty"
    assert await r.projects.find("stuck", "stuck") is not None  # the project document is deleted last
