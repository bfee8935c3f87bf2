"""Toolboxes end to end: five real MCP server implementations behind two gateway instances sharing one registry,
official MCP clients (Python SDK, TypeScript SDK) and raw protocol checks for every revision."""
from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, new_key
from tests.integration.mcp_support import Seeded, register, tamper
from tests.support.mcp_servers import NPM_DIR, Fleet, start_fleet

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"
# approved as they were, changed upstream since: one on a streamable HTTP server, one on a legacy HTTP+SSE server
DRIFTED = {"everything__get-tiny-image", "memory__create_entities"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("mcp-fleet")
    files = root / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from the filesystem server\n")
    f = start_fleet(root, files)
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gateways(start_gateway):
    """Two instances of one deployment: same registry, same key pepper, same session secret."""
    shared = {"COSMOS_DATABASE": "gw-mcp-" + uuid.uuid4().hex[:8],
              "GATEWAY_KEY_HASH_SECRET": "pepper-" + secrets.token_hex(8),
              "MCP_SESSION_SECRETS": "s-" + secrets.token_hex(16), "MCP_APPROVAL_WAIT_SECONDS": "3"}
    return start_gateway(**shared), start_gateway(**shared), shared


@pytest.fixture(scope="module")
async def world(gateways, fleet: Fleet, emulators):
    a, b, shared = gateways
    with httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin:
        pid = "p-" + uuid.uuid4().hex[:10]
        r = admin.post("/manage/projects", json={"id": pid, "name": pid, "pillars": {"tools": {"enabled": True}}})
        assert r.status_code == 201, r.text
        key = new_key(admin, pid)
        other_key = new_key(admin, pid)
        narrow_key = new_key(admin, pid, tools=["fastmcp__add"])
        # SSRF at registration: the admin API refuses a server on a link-local (metadata) address
        r = admin.post(f"/manage/projects/{pid}/mcp-servers", json={"id": "meta", "namespace": "meta",
                                                                    "url": "http://169.254.169.254/mcp"})
        assert r.status_code == 422, r.text
        seeded = register(admin, pid, fleet, sensitive={"fastmcp__wire_transfer"},
                          limits={"fastmcp__big": {"max_result_bytes": 2048}})
    await tamper(emulators.cosmos_connection_string, shared["COSMOS_DATABASE"], pid, seeded,
                 drifted=DRIFTED, unreachable={"metadata": "http://169.254.169.254/mcp"})
    return {"a": a, "b": b, "key": key, "other_key": other_key, "narrow_key": narrow_key, "box": seeded}


def rpc(client: httpx.Client, url: str, method: str, params: dict | None = None, *, id_: int = 1,
        headers: dict | None = None) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
    return client.post(url, json=body, headers={"Accept": ACCEPT, **(headers or {})})


def modern(client: httpx.Client, url: str, method: str, params: dict | None = None, name: str | None = None,
           *, capabilities: dict | None = None, extra: dict | None = None) -> httpx.Response:
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **(extra or {})}
    if name:
        headers["Mcp-Name"] = name
    meta = {**META, "io.modelcontextprotocol/clientCapabilities": capabilities or {}}
    return rpc(client, url, method, {**(params or {}), "_meta": meta}, headers=headers)


def body_of(r: httpx.Response) -> dict:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return events[-1]
    return r.json()


@pytest.fixture
def client(world) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30) as c:
        yield c


def url(world, gw: str = "a") -> str:
    return f"{world[gw].url}/mcp/{world['box'].toolbox}"


# ---- 2025 sessions work on any instance


def test_session_alternates_between_two_instances(world, client):
    box: Seeded = world["box"]
    init = rpc(client, url(world, "a"), "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                      "clientInfo": {"name": "t", "version": "1"}})
    assert init.status_code == 200, init.text
    assert body_of(init)["result"]["protocolVersion"] == "2025-11-25"
    sid = init.headers["mcp-session-id"]
    h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    calls = [("everything__echo", {"message": "hi"}), ("sdk__shout", {"text": "abc"}), ("fastmcp__add", {"a": 2, "b": 3}),
             ("memory__read_graph", {}), ("filesystem__list_allowed_directories", {})]
    for i, (name, args) in enumerate(calls):
        gw = "ab"[i % 2]
        listed = rpc(client, url(world, gw), "tools/list", headers=h)
        names = {t["name"] for t in body_of(listed)["result"]["tools"]}
        assert names >= {t for tools in box.tools.values() for t in tools} - DRIFTED
        assert not names & set(box.hidden)  # unapproved and quarantined tools are never listed
        res = body_of(rpc(client, url(world, gw), "tools/call", {"name": name, "arguments": args}, headers=h))
        assert "result" in res and not res["result"].get("isError"), (name, res)
        assert "resultType" not in res["result"]  # a 2025 client never sees 2026 fields


def test_foreign_or_tampered_session_is_refused(world, client):
    sid = rpc(client, url(world), "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}}).headers[
        "mcp-session-id"]
    with httpx.Client(headers={"Authorization": f"Bearer {world['other_key']}"}, timeout=10) as other:
        assert rpc(other, url(world, "b"), "tools/list", headers={"Mcp-Session-Id": sid}).status_code == 404
    assert rpc(client, url(world, "b"), "tools/list", headers={"Mcp-Session-Id": sid[:-4] + "AAAA"}).status_code == 404
    assert rpc(client, url(world, "b"), "tools/list").status_code == 400  # no session, no envelope


# ---- official clients


async def test_official_python_client(world):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    for mode in ("legacy", "auto"):  # 2025-11-25 session, then 2026-07-28 discovery
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30)
        async with http, Client(streamable_http_client(url(world, "b"), http_client=http), mode=mode) as c:
            assert c.protocol_version == ("2025-11-25" if mode == "legacy" else MODERN)
            tools = await c.list_tools()
            assert "sdk__forecast" in {t.name for t in tools.tools}
            res = await c.call_tool("sdk__forecast", {"city": "Paris", "days": 2})
            assert res.structured_content == {"city": "Paris", "celsius": 22.0}
            res = await c.call_tool("memory__read_graph", {})
            assert not res.is_error


async def test_a_server_asks_a_2026_client_for_input_through_the_toolbox(world, client):
    """The SDK server's `book` asks the user to confirm. A 2026 client that declared elicitation gets the server's
    InputRequiredResult through the toolbox and answers on its retry — here on the other instance: nothing is held
    between the rounds, each round is a governed call of its own. Without the capability the server refuses
    (-32021: the gateway passes on only what the client declared). The official client does the round trip
    itself."""
    name, args, caps = "sdk__book", {"city": "Oslo"}, {"elicitation": {}}
    first = body_of(modern(client, url(world, "a"), "tools/call", {"name": name, "arguments": args}, name,
                           capabilities=caps))["result"]
    assert first["resultType"] == "input_required", first
    [(key, ask)] = first["inputRequests"].items()
    assert ask["method"] == "elicitation/create" and "Oslo" in ask["params"]["message"]
    retry = {"name": name, "arguments": args, "requestState": first.get("requestState"),
             "inputResponses": {key: {"action": "accept", "content": {"confirm": True}}}}
    done = body_of(modern(client, url(world, "b"), "tools/call", retry, name, capabilities=caps))["result"]
    assert done["resultType"] == "complete" and done["content"][0]["text"] == "booked Oslo", done
    refused = body_of(modern(client, url(world, "a"), "tools/call", {"name": name, "arguments": args}, name))
    assert refused["error"]["code"] == -32021, refused
    assert await _official_book(world, "auto", "Oslo") == (MODERN, ["Book a trip to Oslo?"], "not booked Oslo")


async def _official_book(world, mode: str, city: str) -> tuple[str, list[str], str]:
    """`sdk__book` through instance b with the official Python client in `mode`, its elicitation callback
    declining: (the negotiated revision, the questions it was asked, the tool's answer)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types import ElicitResult

    asked: list[str] = []

    async def decline(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": False})

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {world['key']}"}, timeout=30)
    async with http, Client(streamable_http_client(url(world, "b"), http_client=http), mode=mode,
                            elicitation_callback=decline) as c:
        res = await c.call_tool("sdk__book", {"city": city})
        return c.protocol_version, asked, res.content[0].text


async def test_a_2026_servers_question_reaches_a_2025_client_on_its_stream_across_instances(world):
    """A 2025-11-25 client that declared elicitation calls `book` (its server speaks 2026-07-28 and answers
    input_required): instance a asks on the call's SSE stream (`elicitation/create`), the client answers with a POST
    to instance b, and a's stream ends with the result of the call sent again with that answer. The official client
    in 2025 mode does the same with its elicitation callback."""
    auth = {"Authorization": f"Bearer {world['key']}", "Accept": ACCEPT}
    async with httpx.AsyncClient(headers=auth, timeout=30) as http:
        init = await http.post(url(world, "a"), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "t", "version": "1"}}})
        h = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
        await http.post(url(world, "b"), json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sdk__book",
                                                                             "arguments": {"city": "Oslo"}}}
        async with http.stream("POST", url(world, "a"), json=call, headers=h) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            ask = None
            async for line in lines:
                if line.startswith("data:") and line[5:].strip():
                    ask = json.loads(line[5:])
                    break
            assert ask is not None and ask["method"] == "elicitation/create" and "Oslo" in ask["params"]["message"]
            answered = await http.post(url(world, "b"), headers=h, json={
                "jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"confirm": True}}})
            assert answered.status_code == 202
            final = None
            async for line in lines:
                if line.startswith("data:") and line[5:].strip():
                    final = json.loads(line[5:])
            assert final is not None and final["id"] == 2, final
            assert final["result"]["content"][0]["text"] == "booked Oslo", final
    assert await _official_book(world, "legacy", "Rome") == ("2025-11-25", ["Book a trip to Rome?"],
                                                             "not booked Rome")


def test_mcp_param_headers_reach_a_2026_server_that_checks_them(world, client):
    """The SDK server's `route` marks `region` with `x-mcp-header` and refuses (-32020) a call whose
    `Mcp-Param-Region` header does not match: the toolbox sends it, from the pinned schema, for clients of either
    era (non-ASCII values base64-wrapped as the spec says). A 2026 client must send it too, matching its body:
    missing or different is -32020 with HTTP 400 at the toolbox, before anything goes upstream."""
    from shared.pillars.tools.mcp.header_values import encode

    for region in ("eu-west", "Zürich"):
        args = {"region": region, "text": "hi"}
        res = body_of(modern(client, url(world, "a"), "tools/call", {"name": "sdk__route", "arguments": args},
                             "sdk__route", extra={"Mcp-Param-Region": encode(region)}))
        assert res["result"]["content"][0]["text"] == f"{region}:hi", res
    for extra in ({}, {"Mcp-Param-Region": "us"}):  # missing; routed elsewhere than the body says
        r = modern(client, url(world, "a"), "tools/call", {"name": "sdk__route", "arguments": {
            "region": "eu-west", "text": "hi"}}, "sdk__route", extra=extra)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020, r.text
    sid = rpc(client, url(world, "b"), "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                       "clientInfo": {"name": "t", "version": "1"}}).headers[
        "mcp-session-id"]
    h = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
    res = body_of(rpc(client, url(world, "b"), "tools/call", {"name": "sdk__route", "arguments": {
        "region": "us", "text": "yo"}}, headers=h))
    assert res["result"]["content"][0]["text"] == "us:yo", res


def test_typescript_sdk_client(world):
    script = NPM_DIR / "ts_client.mjs"
    out = subprocess.run(["node", str(script), url(world, "a"), world["key"], "fastmcp__add"], cwd=NPM_DIR,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert "fastmcp__add" in report["tools"]
    assert report["result"]["content"][0]["text"] == "5"


# ---- 2026-07-28


def test_modern_requests_without_session(world, client):
    found = body_of(modern(client, url(world, "b"), "server/discover"))["result"]
    assert MODERN in found["supportedVersions"] and found["resultType"] == "complete"
    listed = body_of(modern(client, url(world, "a"), "tools/list"))["result"]
    assert listed["cacheScope"] == "private" and listed["resultType"] == "complete" and "ttlMs" in listed
    res = body_of(modern(client, url(world, "b"), "tools/call", {"name": "everything__get-sum",
                                                                  "arguments": {"a": 1, "b": 2}}, "everything__get-sum"))
    assert res["result"]["resultType"] == "complete"
    mismatch = modern(client, url(world, "a"), "tools/call", {"name": "everything__echo", "arguments": {}},
                      "everything__get-sum")
    assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020


# ---- governance


def test_unapproved_quarantined_and_unknown_tools_are_unreachable(world, client):
    for name in ("everything__get-env", "everything__get-tiny-image", world["box"].hidden[-1], "nope__x"):
        res = body_of(modern(client, url(world), "tools/call", {"name": name, "arguments": {}}, name))
        assert res["error"]["code"] == -32602, res


def test_key_tool_scope_limits_list_and_call(world):
    with httpx.Client(headers={"Authorization": f"Bearer {world['narrow_key']}"}, timeout=30) as narrow:
        listed = body_of(modern(narrow, url(world), "tools/list"))["result"]["tools"]
        assert [t["name"] for t in listed] == ["fastmcp__add"]
        res = body_of(modern(narrow, url(world, "b"), "tools/call", {"name": "sdk__shout",
                                                                      "arguments": {"text": "x"}}, "sdk__shout"))
        assert res["error"]["code"] == -32030


def test_drifted_definition_is_quarantined_at_list_time(world, client):
    names = {t["name"] for t in body_of(modern(client, url(world, "a"), "tools/list"))["result"]["tools"]}
    assert not DRIFTED & names and {"everything__echo", "memory__read_graph"} <= names
    for name in DRIFTED:
        res = body_of(modern(client, url(world, "a"), "tools/call", {"name": name, "arguments": {}}, name))
        assert res["error"]["code"] == -32602
    # the pinning timer reads every server too, the legacy HTTP+SSE one over its own transport
    with httpx.Client(base_url=world["b"].url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as admin:
        report = admin.post("/manage/tools/pinning-check").json()
    project = world["box"].project
    assert f"{project}/metadata" in report["unreachable"] and f"{project}/memory" not in report["unreachable"]


def test_every_call_is_in_the_request_log(world, client, emulators):
    from azure.data.tables import TableServiceClient

    marker = "log-" + uuid.uuid4().hex[:8]
    res = body_of(modern(client, url(world, "b"), "tools/call", {"name": "everything__echo",
                                                                  "arguments": {"message": marker}}, "everything__echo"))
    assert marker in json.dumps(res)
    table = TableServiceClient.from_connection_string(emulators.storage_connection_string).get_table_client(
        "gatewayrequests")
    project = world["box"].project
    for _ in range(50):
        rows = [r for r in table.query_entities(f"PartitionKey ge '{project}|' and PartitionKey lt '{project}}}'")
                if r.get("pillar") == "tools" and r.get("resource") == "everything__echo"]
        if rows:
            break
        time.sleep(0.2)  # the log is written asynchronously in batches (USAGE_FLUSH_SECONDS=0.2)
    row = rows[0]
    assert row["toolbox"] == world["box"].toolbox and row["server"] == "everything" and row["status"] == 200
    assert row["target"] == "everything/primary" and row["response_bytes"] > 0 and row["caller"]
    assert row["latency_ms"] > 0


def test_arguments_checked_against_input_schema(world, client):
    res = body_of(modern(client, url(world), "tools/call", {"name": "fastmcp__add", "arguments": {"a": "x"}},
                         "fastmcp__add"))
    assert res["error"]["code"] == -32602 and res["error"]["data"]["errors"]


def test_result_size_limit(world, client):
    res = body_of(modern(client, url(world), "tools/call", {"name": "fastmcp__big", "arguments": {"size": 10000}},
                         "fastmcp__big"))
    assert res["error"]["code"] == -32034


def test_ssrf_at_call_time_refused(world, client):
    res = body_of(modern(client, url(world), "tools/call", {"name": "metadata__probe", "arguments": {}},
                         "metadata__probe"))
    assert res["error"]["code"] == -32033 and "Egress" in json.dumps(res)


def test_malformed_json_rpc_gets_json_rpc_errors(world, client):
    for raw, code in ((b"{not json", -32700), (b"[]", -32600), (b'{"jsonrpc":"1.0","id":1,"method":"x"}', -32600),
                      (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}', -32602)):
        r = client.post(url(world), content=raw, headers={"Accept": ACCEPT, "Content-Type": "application/json"})
        assert r.status_code < 500 and r.json()["error"]["code"] == code, (raw, r.text)


def test_sensitive_call_waits_for_approval(world, client):
    args = {"account": "acct-" + uuid.uuid4().hex[:6], "amount": 5}
    params = {"name": "fastmcp__wire_transfer", "arguments": args}
    elicits = {"elicitation": {}}
    # a 2026 client that did not declare elicitation is never sent one: the pending error with a retry hint
    first = body_of(modern(client, url(world), "tools/call", params, "fastmcp__wire_transfer"))
    assert first["error"]["code"] == -32032 and first["error"]["data"]["retryAfterSeconds"] >= 1
    approval = first["error"]["data"]["approvalId"]
    # one that declared it gets an InputRequiredResult whose elicitation explains the wait
    asked = body_of(modern(client, url(world), "tools/call", params, "fastmcp__wire_transfer",
                           capabilities=elicits))["result"]
    assert asked["resultType"] == "input_required" and asked["requestState"] == approval
    assert asked["inputRequests"]["approval"]["method"] == "elicitation/create"
    # an older client learns the same through a JSON-RPC error with a retry hint
    sid = rpc(client, url(world), "initialize", {"protocolVersion": "2025-03-26", "capabilities": {}}).headers[
        "mcp-session-id"]
    old = body_of(rpc(client, url(world, "b"), "tools/call", params, headers={"Mcp-Session-Id": sid}))
    assert old["error"]["code"] == -32032 and old["error"]["data"]["approvalId"] == approval
    with httpx.Client(base_url=world["b"].url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        project = world["box"].project
        waiting = admin.get(f"/manage/projects/{project}/tool-call-approvals").json()["items"]
        assert approval in {w["id"] for w in waiting}
        r = admin.post(f"/manage/projects/{project}/tool-call-approvals/{approval}/decision",
                       json={"decision": "approve"})
        assert r.status_code == 200, r.text
    done = body_of(modern(client, url(world, "b"), "tools/call", {**params, "requestState": approval},
                          "fastmcp__wire_transfer", capabilities=elicits))["result"]
    assert done["content"][0]["text"] == f"sent 5 to {args['account']}"
    # one approval, one call: the same call again waits for a new approval
    again = body_of(modern(client, url(world), "tools/call", params, "fastmcp__wire_transfer",
                           capabilities=elicits))["result"]
    assert again["resultType"] == "input_required"


def test_sensitive_call_elicits_and_runs_once_approved_on_a_2025_session(world, client):
    """2025-06-18+ with the elicitation capability: the call's SSE stream carries an elicitation/create that says
    the call waits; an approver accepts on the other instance; the same stream then carries the tool's result."""
    init = rpc(client, url(world), "initialize", {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                                                  "clientInfo": {"name": "t", "version": "1"}})
    h = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18", "Accept": ACCEPT}
    args = {"account": "acct-" + uuid.uuid4().hex[:6], "amount": 7}
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fastmcp__wire_transfer", "arguments": args}}
    with client.stream("POST", url(world, "b"), json=body, headers=h) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = next(json.loads(line[5:]) for line in lines if line.startswith("data:"))
        assert first["method"] == "elicitation/create" and "approval" in first["params"]["message"]
        with httpx.Client(base_url=world["a"].url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
            project = world["box"].project
            waiting = [w for w in admin.get(f"/manage/projects/{project}/tool-call-approvals").json()["items"]
                       if args["account"] in w["arguments_preview"]]
            assert len(waiting) == 1
            r = admin.post(f"/manage/projects/{project}/tool-call-approvals/{waiting[0]['id']}/decision",
                           json={"decision": "approve", "reason": "expected"})
            assert r.status_code == 200, r.text
        final = next(json.loads(line[5:]) for line in lines if line.startswith("data:"))
    assert final["id"] == 9 and final["result"]["content"][0]["text"] == f"sent 7 to {args['account']}"


# ---- JSON-RPC batches: 2025-03-26 only


def test_batches_on_a_2025_03_26_session_and_refused_elsewhere(world, client):
    def session(version: str) -> dict:
        init = rpc(client, url(world), "initialize", {"protocolVersion": version, "capabilities": {}})
        return {"Mcp-Session-Id": init.headers["mcp-session-id"], "Accept": ACCEPT}

    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fastmcp__add",
                                                                             "arguments": {"a": 2, "b": 3}}},
             {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}},
             {"jsonrpc": "2.0", "id": "two", "method": "tools/call", "params": {"name": "everything__get-env"}},
             {"jsonrpc": "1.0", "id": 3, "method": "ping"},
             {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}}]
    r = client.post(url(world, "b"), json=batch, headers=session("2025-03-26"))  # answered on the other instance
    assert r.status_code == 200, r.text
    answers = r.json()
    assert [a["id"] for a in answers] == [1, "two", 3, 4]  # one per request, in order; none for the notification
    assert answers[0]["result"]["content"][0]["text"] == "5"
    assert [a["error"]["code"] for a in answers[1:]] == [-32602, -32600, -32600]  # unapproved tool: unreachable
    only_notes = client.post(url(world), json=[{"jsonrpc": "2.0", "method": "notifications/initialized"}],
                             headers=session("2025-03-26"))
    assert only_notes.status_code == 202 and not only_notes.content
    for headers in (session("2025-06-18"), session("2025-11-25"), {"Accept": ACCEPT}):
        refused = client.post(url(world), json=batch[:1], headers=headers)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600, refused.text


# ---- tasks: 2025-11-25 utility and the 2026-07-28 extension, bridged to server-everything's 2025-11-25 tasks


RESEARCH = "everything__simulate-research-query"


def poll_task(get, tid: str, *, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = get(tid)
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
        time.sleep(0.3)
    raise AssertionError(f"task not finished in {timeout}s: {task}")


def test_task_augmented_call_2025_11_25_on_any_instance_and_sealed_to_the_caller(world, client):
    init = rpc(client, url(world), "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
    assert init.json()["result"]["capabilities"]["tasks"]["requests"] == {"tools": {"call": {}}}
    h = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    tools = {t["name"]: t for t in body_of(rpc(client, url(world, "b"), "tools/list", headers=h))["result"]["tools"]}
    assert tools[RESEARCH]["execution"] == {"taskSupport": "required"}  # as the server lists it now
    assert "execution" not in tools["everything__echo"]
    created = body_of(rpc(client, url(world, "a"), "tools/call", {"name": RESEARCH, "arguments": {"topic": "mcp"},
                                                                   "task": {"ttl": 60000}}, headers=h))
    task = created["result"]["task"]
    tid = task["taskId"]
    assert tid.startswith("mcptask1.") and task["status"] == "working", created
    # sealed like the sessions: another caller, a tampered id, another toolbox's view: "task not found"
    with httpx.Client(headers={"Authorization": f"Bearer {world['other_key']}"}, timeout=30) as other:
        sid = rpc(other, url(world), "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}}).headers[
            "mcp-session-id"]
        foreign = body_of(rpc(other, url(world, "b"), "tasks/get", {"taskId": tid},
                              headers={"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}))
        assert foreign["error"]["code"] == -32602
    tampered = body_of(rpc(client, url(world, "b"), "tasks/get", {"taskId": tid[:-3] + "AAA"}, headers=h))
    assert tampered["error"]["code"] == -32602
    listed = body_of(rpc(client, url(world, "b"), "tasks/list", headers=h))["result"]["tasks"]
    assert tid in {t["taskId"] for t in listed}  # one task, one id, on every instance
    done = poll_task(lambda t: body_of(rpc(client, url(world, "ab"[int(time.monotonic()) % 2]), "tasks/get",
                                           {"taskId": t}, headers=h))["result"], tid)
    assert done["status"] == "completed" and done["taskId"] == tid
    result = body_of(rpc(client, url(world, "b"), "tasks/result", {"taskId": tid}, headers=h))["result"]
    assert "Research Report" in result["content"][0]["text"]
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": tid}
    late = body_of(rpc(client, url(world, "a"), "tasks/cancel", {"taskId": tid}, headers=h))
    assert late["error"]["code"] == -32602  # the server's own answer: already terminal


def test_2026_client_meets_a_2025_11_25_task_server(world, client):
    caps = {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    meta = {**META, "io.modelcontextprotocol/clientCapabilities": caps}

    def call(method: str, params: dict, name: str | None = None, gw: str = "a") -> dict:
        headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **({"Mcp-Name": name} if name else {})}
        return body_of(rpc(client, url(world, gw), method, {**params, "_meta": meta}, headers=headers))

    found = body_of(modern(client, url(world), "server/discover"))["result"]
    assert "io.modelcontextprotocol/tasks" in found["capabilities"]["extensions"]
    created = call("tools/call", {"name": RESEARCH, "arguments": {"topic": "gateways"}}, RESEARCH)["result"]
    assert created["resultType"] == "task" and created["status"] == "working" and "ttlMs" in created, created
    done = poll_task(lambda t: call("tasks/get", {"taskId": t}, gw="b")["result"], created["taskId"])
    assert done["status"] == "completed" and "Research Report" in done["result"]["content"][0]["text"]
    assert done["resultType"] == "complete"
    assert call("tasks/list", {})["error"]["code"] == -32601  # the extension has no tasks/list
    # without the extension the gateway asks for no task: the server refuses a task-required tool itself
    plain = body_of(modern(client, url(world), "tools/call", {"name": RESEARCH, "arguments": {"topic": "x"}}, RESEARCH))
    assert "error" in plain or plain["result"].get("isError"), plain


SLOW = "tasks__slow_report"
TASKS_META = {**META, "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}}


def modern_tasks(client: httpx.Client, gw: str, world, method: str, params: dict, name: str | None = None) -> dict:
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **({"Mcp-Name": name} if name else {})}
    return body_of(rpc(client, url(world, gw), method, {**params, "_meta": TASKS_META}, headers=headers))


def test_2026_tasks_extension_passes_through_to_a_2026_server(world, client):
    created = modern_tasks(client, "a", world, "tools/call", {"name": SLOW, "arguments": {"topic": "x"}}, SLOW)
    task = created["result"]
    assert task["resultType"] == "task" and task["taskId"].startswith("mcptask1.") and task["ttlMs"] == 60000
    done = poll_task(lambda t: modern_tasks(client, "b", world, "tasks/get", {"taskId": t})["result"], task["taskId"])
    assert done["status"] == "completed" and done["result"]["content"][0]["text"] == "report on x"
    assert modern_tasks(client, "a", world, "tasks/cancel", {"taskId": task["taskId"]})["result"] == {
        "resultType": "complete"}
    with httpx.Client(headers={"Authorization": f"Bearer {world['other_key']}"}, timeout=30) as other:
        foreign = modern_tasks(other, "b", world, "tasks/get", {"taskId": task["taskId"]})
        assert foreign["error"]["code"] == -32602
    # a client that does not declare the extension gets the plain result (the gateway declares nothing upstream)
    plain = body_of(modern(client, url(world), "tools/call", {"name": SLOW, "arguments": {"topic": "y", "seconds": 0}},
                           SLOW))["result"]
    assert plain["resultType"] == "complete" and plain["content"][0]["text"] == "report on y"


def test_2025_11_25_client_meets_a_2026_task_server(world, client):
    init = rpc(client, url(world), "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
    h = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    created = body_of(rpc(client, url(world, "b"), "tools/call", {"name": SLOW, "arguments": {"topic": "z"},
                                                                   "task": {"ttl": 30000}}, headers=h))["result"]
    task = created["task"]
    assert set(created) == {"task"} and task["ttl"] == 60000 and "ttlMs" not in task, created
    done = poll_task(lambda t: body_of(rpc(client, url(world, "a"), "tasks/get", {"taskId": t}, headers=h))["result"],
                     task["taskId"])
    assert done["status"] == "completed" and "result" not in done and "resultType" not in done
    result = body_of(rpc(client, url(world, "a"), "tasks/result", {"taskId": task["taskId"]}, headers=h))["result"]
    assert result["content"][0]["text"] == "report on z"
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
