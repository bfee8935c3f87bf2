"""Per-call approval of sensitive tools, in process (memory store, MockTransport MCP server, injected clock): one
approval runs exactly one call (claimed before it goes upstream, also under concurrency), bound to its caller and
expiry, refused once rejected; the approver sees the whole arguments; a client that did not declare `elicitation`
is never sent an elicitation request; only the gateway's own approval round trip is stripped from what goes
upstream."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.pillars.tools.arguments import call_digest
from shared.pillars.tools.call_approvals import (
    PREVIEW_MAX_CHARS, ApprovalDecision, CallApproval, CallApprovals, approval_id)
from shared.pillars.tools.calls import ToolCalls
from shared.pillars.tools.context import McpContext, Reply
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.domain import (
    McpServer, McpServerSpec, PinnedDefinition, ToolDefinition, Toolbox, ToolboxOwner, ToolboxSpec)
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.upstream import McpUpstream
from shared.pillars.tools.upstreams import SessionPool
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

P = "proj"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
WIRE, ASK = "fs__wire", "fs__ask"  # sensitive; not sensitive
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}}
MODERN, OLD = "2026-07-28", "2025-11-25"


def key(k: str) -> Principal:
    return Principal(kind="virtual_key", subject=k, project_id=P, key_id=k, key_prefix=f"sk-gw-{k}")


class GatedStore(MemoryDocumentStore):
    """Holds every write that marks an approval used until `parties` writers arrived: concurrent calls have all
    read the approval approved (same ETag) before any of them writes."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Barrier | None = None

    async def replace(self, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        if self.gate is not None and doc.get("kind") == CallApproval.kind and doc.get("state") == "used":
            await asyncio.wait_for(self.gate.wait(), timeout=2)
        return await super().replace(doc, etag)


class World:
    def __init__(self) -> None:
        self.now = T0
        self.store = GatedStore()
        self.approvals = CallApprovals(Repository(self.store, CallApproval), ttl_seconds=600, clock=lambda: self.now)
        self.seen: list[dict[str, Any]] = []
        self.fail = False
        server = McpServer(id="fs", project_id=P, spec=McpServerSpec(id="fs", url="https://a.example/mcp",
                                                                     namespace="fs"),
                           lifecycle="published", approval="approved")
        tools = [ToolDefinition(id=name, project_id=P, server_id="fs", original_name=name[4:], name=name,
                                definition=PinnedDefinition(name=name[4:], input_schema=SCHEMA),
                                pinned_hash="sha256:" + "0" * 64, status="approved", sensitive=name == WIRE)
                 for name in (WIRE, ASK)]
        box = Toolbox(id="box", project_id=P, spec=ToolboxSpec(id="box", tools=[WIRE, ASK]), owner=ToolboxOwner())
        self.directory = MemoryToolDirectory().add(server, *tools, box)
        pool = SessionPool(McpUpstream(httpx.AsyncClient(transport=httpx.MockTransport(self.handle)), timeout=5,
                                       max_bytes=1 << 20))

        async def no_auth(server: Any) -> dict[str, str]:
            return {}
        self.calls = ToolCalls(self.directory, pool, no_auth, self.approvals, approval_wait_seconds=0.2,
                               approval_poll_seconds=0.01)

    def handle(self, request: httpx.Request) -> httpx.Response:
        msg = orjson.loads(request.content)
        if msg["method"] == "server/discover":
            res = {"supportedVersions": [MODERN], "capabilities": {"tools": {}}, "resultType": "complete"}
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": res})
        self.seen.append(msg)
        if self.fail:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"],
                                             "error": {"code": -32603, "message": "boom"}})
        res = {"content": [{"type": "text", "text": "done"}], "resultType": "complete"}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": res})

    @property
    def upstream_calls(self) -> list[dict[str, Any]]:
        return [m for m in self.seen if m["method"] == "tools/call"]

    async def call(self, args: dict[str, Any], *, tool: str = WIRE, caller: str = "k1", version: str = MODERN,
                   elicitation: bool = False, **extra: Any) -> dict[str, Any] | Reply:
        """One tools/call through resolve → prepare → send → finish: the JSON-RPC answer, or the Reply that makes
        it wait. A refusal raises rpc.Fault."""
        ctx = McpContext(principal=key(caller), project_id=P, toolbox="box", request_id="r",
                         client_version=version, elicitation=elicitation)
        params = {"name": tool, "arguments": args, **extra}
        msg = rpc.Message(raw={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params},
                          method="tools/call", id=1, params=params)
        resolved = await self.calls.resolve(ctx, msg)
        prepared = await self.calls.prepare(ctx, msg, resolved)
        if isinstance(prepared, Reply):
            return prepared
        result = await self.calls.send(ctx, prepared, prepared.targets[0])
        return await self.calls.finish(ctx, msg, prepared, result)

    def approval_of(self, args: dict[str, Any], caller: str = "k1") -> str:
        return approval_id(caller, WIRE, call_digest(WIRE, args))

    async def decide(self, args: dict[str, Any], decision: str = "approve", caller: str = "k1") -> None:
        await self.approvals.decide(P, self.approval_of(args, caller), ApprovalDecision(decision=decision), "admin")

    async def stored(self, args: dict[str, Any], caller: str = "k1") -> CallApproval:
        return await Repository(self.store, CallApproval).get(P, self.approval_of(args, caller))


async def pending_then_approved(w: World, args: dict[str, Any]) -> None:
    with pytest.raises(rpc.Fault) as first:
        await w.call(args)
    assert first.value.code == rpc.APPROVAL_PENDING
    await w.decide(args)


def ran(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("result", {}).get("content") == [{"type": "text", "text": "done"}]


# ---- one approval, one call


async def test_two_concurrent_identical_calls_under_one_approval_run_once():
    w = World()
    args = {"text": "pay 5"}
    await pending_then_approved(w, args)
    w.store.gate = asyncio.Barrier(2)  # both calls read it approved before either claims it
    answers = await asyncio.gather(w.call(args, elicitation=True), w.call(args, elicitation=True),
                                   return_exceptions=True)
    assert len(w.upstream_calls) == 1
    assert sum(ran(a) for a in answers) == 1
    [waiting] = [a for a in answers if not ran(a)]
    assert isinstance(waiting, Reply) and waiting.message["result"]["resultType"] == "input_required"
    assert (await w.stored(args)).state == "pending"  # the loser asks for a new approval


async def test_a_replayed_call_needs_a_new_approval():
    w = World()
    args = {"text": "pay 6"}
    await pending_then_approved(w, args)
    assert ran(await w.call(args))
    with pytest.raises(rpc.Fault) as again:
        await w.call(args)
    assert again.value.code == rpc.APPROVAL_PENDING
    assert len(w.upstream_calls) == 1


async def test_the_approval_is_consumed_before_the_call_goes_upstream_and_stays_consumed_if_it_fails():
    w = World()
    args = {"text": "pay 7"}
    await pending_then_approved(w, args)
    w.fail = True
    with pytest.raises(rpc.Fault):  # the server's own error
        await w.call(args)
    w.fail = False
    with pytest.raises(rpc.Fault) as again:  # a sensitive call may have had its effect: a new approval
        await w.call(args)
    assert again.value.code == rpc.APPROVAL_PENDING
    assert len(w.upstream_calls) == 1


async def test_an_approval_is_bound_to_its_caller():
    w = World()
    args = {"text": "pay 8"}
    await pending_then_approved(w, args)
    with pytest.raises(rpc.Fault) as other:
        await w.call(args, caller="k2")
    assert other.value.code == rpc.APPROVAL_PENDING
    assert other.value.data["approvalId"] == w.approval_of(args, "k2") != w.approval_of(args, "k1")
    assert not w.upstream_calls
    assert ran(await w.call(args, caller="k1"))


async def test_an_expired_approval_runs_nothing():
    w = World()
    args = {"text": "pay 9"}
    await pending_then_approved(w, args)
    w.now = T0 + timedelta(seconds=601)
    with pytest.raises(rpc.Fault) as late:
        await w.call(args)
    assert late.value.code == rpc.APPROVAL_PENDING
    assert not w.upstream_calls
    stored = await w.stored(args)
    assert stored.state == "pending" and stored.expires_at == w.now + timedelta(seconds=600)  # asked anew


async def test_claim_refuses_an_approval_read_approved_that_expired_since():
    w = World()
    args = {"text": "pay 9b"}
    await pending_then_approved(w, args)
    read = await w.stored(args)
    w.now = T0 + timedelta(seconds=601)
    assert await w.approvals.claim(read) is None
    assert (await w.stored(args)).state == "approved"


async def test_a_rejected_call_is_refused_and_never_sent():
    w = World()
    args = {"text": "pay 10"}
    with pytest.raises(rpc.Fault):
        await w.call(args)
    await w.decide(args, "reject")
    with pytest.raises(rpc.Fault) as refused:
        await w.call(args)
    assert refused.value.code == rpc.GOVERNANCE_REFUSED
    assert refused.value.data == {"approvalId": w.approval_of(args)}
    assert not w.upstream_calls


async def test_a_2025_elicitation_stream_waits_for_the_decision_then_runs_the_call_once():
    w = World()
    args = {"text": "pay 11"}
    reply = await w.call(args, version="2025-06-18", elicitation=True)
    assert isinstance(reply, Reply) and reply.before[0]["method"] == "elicitation/create"
    await w.decide(args)
    await reply.wait  # approved; the runner then runs the call again from the start, which claims it
    assert (await w.stored(args)).state == "approved" and not w.upstream_calls
    assert ran(await w.call(args, version="2025-06-18", elicitation=True))
    assert (await w.stored(args)).state == "used" and len(w.upstream_calls) == 1


async def test_a_2025_elicitation_stream_refused_once_rejected():
    w = World()
    args = {"text": "pay 11b"}
    reply = await w.call(args, version="2025-06-18", elicitation=True)
    await w.decide(args, "reject")
    with pytest.raises(rpc.Fault) as refused:
        await reply.wait
    assert refused.value.code == rpc.GOVERNANCE_REFUSED


# ---- the approver reads the whole call


async def test_the_approver_sees_the_whole_arguments():
    w = World()
    args = {"text": "x" * (PREVIEW_MAX_CHARS - 100) + "TAIL-pay-to-mallory"}
    with pytest.raises(rpc.Fault):
        await w.call(args)
    stored = await w.stored(args)
    assert stored.arguments_preview == orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()
    assert "TAIL-pay-to-mallory" in stored.arguments_preview


async def test_arguments_too_long_to_show_whole_are_refused_naming_the_limit():
    w = World()
    args = {"text": "x" * PREVIEW_MAX_CHARS}
    with pytest.raises(rpc.Fault) as refused:
        await w.call(args)
    assert refused.value.code == rpc.GOVERNANCE_REFUSED
    assert refused.value.data["code"] == "approval_arguments_too_large"
    assert refused.value.data["limit"] == PREVIEW_MAX_CHARS and str(PREVIEW_MAX_CHARS) in refused.value.message
    assert await Repository(w.store, CallApproval).find(P, w.approval_of(args)) is None
    assert not w.upstream_calls


# ---- elicitation only when the client declared it


async def test_a_2026_client_without_elicitation_gets_the_pending_error_not_an_input_request():
    w = World()
    args = {"text": "pay 12"}
    with pytest.raises(rpc.Fault) as pending:
        await w.call(args, version=MODERN, elicitation=False)
    assert pending.value.code == rpc.APPROVAL_PENDING
    assert pending.value.data["approvalId"] == w.approval_of(args)
    assert pending.value.data["retryAfterSeconds"] >= 1


async def test_a_2026_client_with_elicitation_gets_an_input_required_result():
    w = World()
    args = {"text": "pay 13"}
    reply = await w.call(args, version=MODERN, elicitation=True)
    assert isinstance(reply, Reply) and reply.message is not None
    result = reply.message["result"]
    assert result["resultType"] == "input_required" and result["requestState"] == w.approval_of(args)
    assert result["inputRequests"]["approval"]["method"] == "elicitation/create"


async def test_a_2025_client_without_elicitation_gets_the_pending_error():
    w = World()
    with pytest.raises(rpc.Fault) as pending:
        await w.call({"text": "pay 14"}, version=OLD, elicitation=False)
    assert pending.value.code == rpc.APPROVAL_PENDING


# ---- only the gateway's own round trip is stripped


async def test_the_retry_of_our_approval_round_trip_is_not_forwarded():
    w = World()
    args = {"text": "pay 15"}
    reply = await w.call(args, elicitation=True)
    assert isinstance(reply, Reply)
    await w.decide(args)
    state = reply.message["result"]["requestState"]
    assert ran(await w.call(args, elicitation=True, requestState=state, inputResponses={"approval": {}}))
    [sent] = w.upstream_calls
    assert "requestState" not in sent["params"] and "inputResponses" not in sent["params"]


@pytest.mark.parametrize("tool", [ASK, WIRE])
async def test_a_servers_own_state_is_forwarded_even_when_it_starts_like_ours(tool):
    w = World()
    args = {"text": "go"}
    if tool == WIRE:
        await pending_then_approved(w, args)
    own = "ca-" + "f" * 32  # the server's own state, shaped like an approval id (not this call's)
    answer = await w.call(args, tool=tool, requestState=own, inputResponses={"confirm": {"action": "accept"}})
    assert ran(answer)
    [sent] = w.upstream_calls
    assert sent["params"]["requestState"] == own
    assert sent["params"]["inputResponses"] == {"confirm": {"action": "accept"}}
