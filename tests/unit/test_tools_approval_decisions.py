"""Submission decisions, in process (memory store, memory queue): only a submission probed against the subject's
current definition can be approved, a stale open submission is superseded when the subject is submitted again, and
approve / reject (and a probe finishing late) re-check the state inside their conditional write, so one decision
wins and the other is 409."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.errors import Conflict
from shared.pillars.tools.approvals import IDENTITY_FIELDS, subject_hash
from shared.pillars.tools.domain import (
    ApiSource, ApiSourceSpec, McpServer, McpServerSpec, ToolsPolicy, ToolsPolicySpec)
from tests.unit.test_tools_approvals import P, World, d


class W(World):
    """The approvals world, with a hook that runs while the probe reads the subject."""

    def __init__(self) -> None:
        super().__init__([d("search")])
        self.during_probe: Callable[[], Awaitable[None]] | None = None

    async def inspect(self, subject: Any):
        if self.during_probe is not None:
            await self.during_probe()
        return await super().inspect(subject)

    async def edit(self, **spec: Any) -> McpServer:
        """What the admin API's PUT does: a new definition; an identity change withdraws the approval."""
        def change(s: McpServer) -> None:
            new = McpServerSpec.model_validate({**s.spec.model_dump(mode="json"), **spec})
            if any(getattr(s.spec, f) != getattr(new, f) for f in IDENTITY_FIELDS["mcp_server"]):
                s.approval = "unsubmitted"
            s.spec = new
        return await self.reg.servers.update(P, "gh", change)

    async def probed(self) -> str:
        sub = await self.approvals.submit(P, "mcp_server", "gh", "alice")
        assert await self.approvals.process(self.queue.messages[-1]) == "probed"
        return sub.id


# ---- approval needs the probed definition to be the current one


async def test_a_submission_probed_before_the_url_changed_cannot_be_approved():
    w = W()
    await w.add_server()
    sub = await w.probed()
    await w.edit(url="https://elsewhere.example/mcp")
    with pytest.raises(Conflict) as refused:
        await w.approvals.approve(P, sub, "admin", "ok")
    assert refused.value.code == "definition_changed" and refused.value.status == 409
    assert refused.value.details["current_hash"] == subject_hash(await w.reg.servers.get(P, "gh"))
    server = await w.reg.servers.get(P, "gh")
    assert (server.approval, server.lifecycle) == ("unsubmitted", "draft")
    assert (await w.approvals.get(P, sub)).state == "probed"
    assert not (await w.reg.tools.list(P)).items


@pytest.mark.parametrize("change", [{"replicas": [{"id": "r1", "url": "https://r1.example/mcp"}]},
                                    {"auth": {"type": "managed_identity", "scope": "api://x/.default"}}])
async def test_replicas_or_auth_changed_after_the_probe_block_approval_too(change):
    w = W()
    await w.add_server()
    sub = await w.probed()
    await w.edit(**change)
    with pytest.raises(Conflict) as refused:
        await w.approvals.approve(P, sub, "admin", "ok")
    assert refused.value.code == "definition_changed"


async def test_a_change_outside_the_definition_does_not_block_approval():
    w = W()
    await w.add_server()
    sub = await w.probed()
    await w.edit(description="Now with a description.")
    await w.approvals.approve(P, sub, "admin", "ok")
    assert (await w.reg.servers.get(P, "gh")).approval == "approved"


async def test_submitting_again_supersedes_the_stale_submission_and_probes_the_current_definition():
    w = W()
    await w.add_server()
    stale = await w.probed()
    await w.edit(url="https://elsewhere.example/mcp")
    fresh = await w.approvals.submit(P, "mcp_server", "gh", "alice")
    assert fresh.id != stale and fresh.state == "queued"
    old = await w.approvals.get(P, stale)
    assert old.state == "rejected" and "superseded" in old.history[-1].reason
    assert await w.approvals.process(w.queue.messages[-1]) == "probed"
    await w.approvals.approve(P, fresh.id, "admin", "ok")
    server = await w.reg.servers.get(P, "gh")
    assert server.approval == "approved" and str(server.spec.url) == "https://elsewhere.example/mcp"


async def test_an_unchanged_open_submission_is_reused_not_superseded():
    w = W()
    await w.add_server()
    sub = await w.probed()
    again = await w.approvals.submit(P, "mcp_server", "gh", "alice")
    assert again.id == sub and again.state == "probed"


async def test_a_submission_without_a_recorded_definition_cannot_be_approved():
    w = W()
    await w.add_server()
    sub = await w.probed()
    await w.reg.submissions.update(P, sub, lambda s: setattr(s, "probed_hash", None))  # stored before the hash
    with pytest.raises(Conflict) as refused:
        await w.approvals.approve(P, sub, "admin", "ok")
    assert refused.value.code == "definition_changed"


async def test_an_edit_landing_while_approve_registers_tools_leaves_the_server_unapproved():
    w = W()
    await w.add_server()
    sub = await w.probed()
    register = w.reg.register_tools

    async def edited_meanwhile(*args: Any, **kwargs: Any) -> Any:
        await w.edit(url="https://elsewhere.example/mcp")
        return await register(*args, **kwargs)
    w.reg.register_tools = edited_meanwhile  # type: ignore[method-assign]
    with pytest.raises(Conflict) as refused:
        await w.approvals.approve(P, sub, "admin", "ok")
    assert refused.value.code == "definition_changed"
    assert (await w.reg.servers.get(P, "gh")).approval == "unsubmitted"


async def test_a_definition_edited_during_the_probe_is_not_auto_approved():
    w = W()
    await w.reg.policies.create(ToolsPolicy(project_id=P, spec=ToolsPolicySpec(auto_approve_clean=True)))
    await w.add_server()

    async def edit() -> None:
        w.during_probe = None
        await w.edit(url="https://elsewhere.example/mcp")
    w.during_probe = edit
    await w.approvals.submit(P, "mcp_server", "gh", "alice")
    assert await w.approvals.process(w.queue.messages[-1]) == "probed"  # left to an admin, no exception
    assert (await w.reg.servers.get(P, "gh")).approval != "approved"


async def test_an_api_source_recreated_with_another_document_cannot_be_approved_on_the_old_probe():
    w = W()
    spec = {"id": "pets", "namespace": "pets", "document_url": "https://api.example.com/openapi.json"}
    await w.reg.api_sources.create(ApiSource(id="pets", project_id=P, spec=ApiSourceSpec.model_validate(spec)))
    sub = await w.approvals.submit(P, "api_source", "pets", "alice")
    assert await w.approvals.process(w.queue.messages[-1]) == "probed"
    await w.reg.api_sources.delete(P, "pets")
    await w.reg.api_sources.create(ApiSource(id="pets", project_id=P, spec=ApiSourceSpec.model_validate(
        {**spec, "document_url": "https://evil.example.com/openapi.json"})))
    with pytest.raises(Conflict) as refused:
        await w.approvals.approve(P, sub.id, "admin", "ok")
    assert refused.value.code == "definition_changed"


# ---- one decision wins


def _late(w: W, repo_update: Callable[..., Awaitable[Any]], first: Callable[[], Awaitable[Any]]) -> None:
    """The next submission write runs `first` (the other decision) before it reads and writes."""
    async def update(*args: Any, **kwargs: Any) -> Any:
        w.reg.submissions.update = repo_update  # type: ignore[method-assign]
        await first()
        return await repo_update(*args, **kwargs)
    w.reg.submissions.update = update  # type: ignore[method-assign]


async def test_a_reject_checked_before_an_approve_landed_does_not_overwrite_it():
    w = W()
    await w.add_server()
    sub = await w.probed()
    _late(w, w.reg.submissions.update, lambda: w.approvals.approve(P, sub, "admin", "ok"))
    with pytest.raises(Conflict) as lost:
        await w.approvals.reject(P, sub, "bob", "no")
    assert lost.value.status == 409
    assert (await w.approvals.get(P, sub)).state == "approved"
    assert (await w.reg.servers.get(P, "gh")).approval == "approved"


async def test_an_approve_checked_before_a_reject_landed_does_not_publish():
    w = W()
    await w.add_server()
    sub = await w.probed()
    _late(w, w.reg.submissions.update, lambda: w.approvals.reject(P, sub, "bob", "no"))
    with pytest.raises(Conflict) as lost:
        await w.approvals.approve(P, sub, "admin", "ok")
    assert lost.value.status == 409
    assert (await w.approvals.get(P, sub)).state == "rejected"
    server = await w.reg.servers.get(P, "gh")
    assert (server.approval, server.lifecycle) == ("rejected", "draft")


async def test_concurrent_approve_and_reject_one_wins():
    w = W()
    await w.add_server()
    sub = await w.probed()
    gate = asyncio.Barrier(2)
    replace = w.store.replace

    async def gated(doc: dict[str, Any], etag: str) -> dict[str, Any]:
        if doc.get("kind") == "tool_submission" and doc.get("state") in ("approved", "rejected"):
            await asyncio.wait_for(gate.wait(), timeout=2)  # both read the same probed version
        return await replace(doc, etag)
    w.store.replace = gated  # type: ignore[method-assign]
    outcomes = await asyncio.gather(w.approvals.approve(P, sub, "admin", "ok"),
                                    w.approvals.reject(P, sub, "bob", "no"), return_exceptions=True)
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1
    state = (await w.approvals.get(P, sub)).state
    assert (await w.reg.servers.get(P, "gh")).approval == state  # the winner's decision, on both


async def test_a_reject_during_the_probe_stands():
    w = W()
    await w.add_server()
    sub = await w.approvals.submit(P, "mcp_server", "gh", "alice")

    async def reject() -> None:
        await w.approvals.reject(P, sub.id, "bob", "not needed")
    w.during_probe = reject
    assert await w.approvals.process(w.queue.messages[-1]) == "duplicate"
    assert (await w.approvals.get(P, sub.id)).state == "rejected"
    assert (await w.reg.servers.get(P, "gh")).approval == "rejected"
