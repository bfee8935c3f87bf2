"""A server asking the client for input through the toolbox. 2026-07-28 does it statelessly — the server answers
`resultType: "input_required"`, the client answers on its retry — so a 2026 client's declared `elicitation`,
`sampling` and `roots` capabilities go on to a 2026 server (and nothing else it declared); a handshake-era server
never sees the 2026 envelope keys; a 2025 client, which could only answer on a stream bound to one instance, gets
-32035 at once when a server asks anyway."""
from __future__ import annotations

import httpx
import orjson
import pytest

from shared.pillars.tools.calls import ToolCalls
from shared.pillars.tools.context import McpContext
from shared.pillars.tools.directory import MemoryToolDirectory
from shared.pillars.tools.mcp import bridge
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp import revisions as rev
from shared.pillars.tools.mcp.session import UpstreamSession
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream
from shared.pillars.tools.upstreams import SessionPool
from tests.unit.test_mcp_hot_path import CALL, HEADERS, KEY, TOOL, plane


def _with_caps(caps: dict) -> bytes:
    msg = orjson.loads(CALL)
    msg["params"]["_meta"][rev.CLIENT_CAPABILITIES_KEY] = caps
    return orjson.dumps(msg)


def test_only_what_a_server_can_ask_through_a_retry_is_relayed():
    meta = {rev.CLIENT_CAPABILITIES_KEY: {"elicitation": {"form": {}}, "sampling": {}, "roots": {"listChanged": True},
                                          "experimental": {"x": {}}, "extensions": {"io.x/y": {}}, "bad": 1}}
    assert bridge.relayed_capabilities({"_meta": meta}) == {"elicitation": {"form": {}}, "sampling": {},
                                                             "roots": {"listChanged": True}}
    assert bridge.relayed_capabilities({}) == {} and bridge.relayed_capabilities({"_meta": {"x": 1}}) == {}


@pytest.mark.parametrize("caps, upstream", [({"elicitation": {}, "experimental": {"x": {}}}, {"elicitation": {}}),
                                            ({}, {})])
async def test_a_2026_clients_input_capabilities_reach_a_2026_server(caps, upstream):
    transport, _, usage, seen = await plane(False)
    reply = await transport.post(KEY, "box", HEADERS, _with_caps(caps), "r1")
    await usage.close()
    assert reply.status == 200 and orjson.loads(reply.body)["result"]["resultType"] == "complete"
    [call] = [m for m in seen if m["method"] == "tools/call"]
    assert call["params"]["_meta"][rev.CLIENT_CAPABILITIES_KEY] == upstream


async def test_a_handshake_era_server_never_sees_the_2026_envelope_keys():
    seen: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        msg = orjson.loads(request.content)
        seen.append(msg)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg.get("id"), "result": {"content": []}})

    upstream = McpUpstream(httpx.AsyncClient(transport=httpx.MockTransport(handle)), timeout=5, max_bytes=1 << 16)
    params = {"name": "read", "arguments": {}, "_meta": {rev.CLIENT_CAPABILITIES_KEY: {"elicitation": {}},
                                                         "progressToken": 7}}
    await upstream.request(Endpoint(id="s/primary", url="https://s.example/mcp"),
                           UpstreamSession(version="2025-11-25", session_id="u1"), "tools/call", params)
    assert seen[-1]["params"]["_meta"] == {"progressToken": 7}


async def test_a_2025_client_gets_a_clear_error_when_a_server_asks_anyway():
    calls = ToolCalls(MemoryToolDirectory(), SessionPool(McpUpstream(httpx.AsyncClient(), timeout=5, max_bytes=1)),
                      lambda s: {}, None)
    msg = rpc.parse_object({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": TOOL}})
    assert isinstance(msg, rpc.Message)
    asking = {"resultType": "input_required", "inputRequests": {"q": {"method": "elicitation/create"}}}
    old = McpContext(principal=KEY, project_id="proj", toolbox="box", request_id="r", client_version="2025-11-25")
    with pytest.raises(rpc.Fault) as fault:
        await calls.finish(old, msg, None, asking)  # type: ignore[arg-type]
    assert fault.value.code == rpc.INPUT_NOT_RELAYED == -32035
    new = McpContext(principal=KEY, project_id="proj", toolbox="box", request_id="r", client_version="2026-07-28")
    assert (await calls.finish(new, msg, None, asking))["result"]["inputRequests"]  # type: ignore[arg-type]
