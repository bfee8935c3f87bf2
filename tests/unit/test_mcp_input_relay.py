"""The relay of a 2026 server's questions to a 2025 client (shared/pillars/tools/input_relay.py), in process: what
can be asked on a 2025 stream, answers stored per caller and read once, the wait's bound."""
from __future__ import annotations

import pytest

from shared.pillars.tools.context import McpContext
from shared.pillars.tools.input_relay import InputAnswer, InputRelay, relayable
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp.session import SessionState
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from tests.unit.test_mcp_hot_path import KEY

ASK = {"method": "elicitation/create", "params": {"mode": "form", "message": "Book?", "requestedSchema": {
    "type": "object", "properties": {"confirm": {"type": "boolean"}}}}}


def _ctx(version: str = "2025-11-25", elicitation: bool = True, session: bool = True) -> McpContext:
    state = SessionState(principal="k1", toolbox="box", client_version=version, elicitation=elicitation,
                         expires=2**31) if session else None
    return McpContext(principal=KEY, project_id="proj", toolbox="box", request_id="r", client_version=version,
                      elicitation=elicitation, session=state)


def test_what_a_2025_stream_can_carry():
    result = {"resultType": "input_required", "inputRequests": {"q": ASK}, "requestState": "s"}
    assert relayable(_ctx(), result) == [("q", {"message": "Book?", "mode": "form",
                                               "requestedSchema": ASK["params"]["requestedSchema"]})]
    assert relayable(_ctx("2025-06-18"), result)[0][1].keys() == {"message", "requestedSchema"}  # no `mode` yet
    for ctx in (_ctx(elicitation=False), _ctx(session=False), _ctx("2026-07-28")):
        assert relayable(ctx, result) is None
    for other in ({"method": "sampling/createMessage", "params": {}},
                  {"method": "elicitation/create", "params": {"mode": "url", "url": "https://x"}}):
        assert relayable(_ctx(), {**result, "inputRequests": {"q": ASK, "r": other}}) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_per_caller_read_once_and_the_wait_is_bounded(monkeypatch):
    repo, clock = Repository(MemoryDocumentStore(), InputAnswer), Clock()
    relay = InputRelay(repo, wait_seconds=5, poll_seconds=0, clock=clock)
    mine, theirs = relay.new_id(), relay.new_id()
    assert relay.owns(mine) and not relay.owns("approval-1") and not relay.owns(7)
    await relay.answer("proj", "k1", {"jsonrpc": "2.0", "id": mine, "result": {"action": "accept",
                                                                                "content": {"confirm": True}}})
    await relay.answer("proj", "k2", {"jsonrpc": "2.0", "id": theirs, "result": {"action": "accept"}})  # other key
    await relay.answer("proj", "k1", {"jsonrpc": "2.0", "id": theirs, "error": {"code": -1, "message": "no"}})
    assert await relay.wait("proj", "k1", [mine, theirs]) == {
        mine: {"action": "accept", "content": {"confirm": True}}, theirs: {"action": "cancel"}}
    assert [d.answer for d in (await repo.list("proj")).items] == [{"action": "accept"}]  # k1's read and gone

    async def tick(_: float) -> None:
        clock.now += 1

    monkeypatch.setattr("shared.pillars.tools.input_relay.asyncio.sleep", tick)
    with pytest.raises(rpc.Fault) as fault:
        await relay.wait("proj", "k1", [relay.new_id()])
    assert fault.value.code == rpc.REQUEST_TIMEOUT and clock.now >= 5
