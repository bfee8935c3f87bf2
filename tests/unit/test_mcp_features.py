"""MCP protocol features in process: JSON-RPC batches per negotiated revision, sealed ids, the two task shapes and
their bridging, and the playground's governance trace read from the pipeline's Exchange."""
from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.pillars.tools.domain import McpServer, McpServerSpec
from shared.pillars.tools.outbound_auth import OutboundAuthenticator
from shared.pillars.tools.probe import Prober

from shared.auth.principal import Principal
from shared.pillars.tools.context import McpContext, Reply
from shared.pillars.tools.mcp import batch
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp import task_shapes as shapes
from shared.sealed import SealedInvalid, Sealer
from shared.pillars.tools.mcp.session import SessionCodec, SessionState, UpstreamSession
from shared.pillars.tools.tasks import TaskBridge, TaskHandle
from shared.pillars.tools.transport import McpTransport

KEY = Principal(kind="virtual_key", subject="k1", project_id="p1", key_id="k1")


# ---- batches


def test_batch_loading_bounds_and_garbage():
    assert batch.is_batch(b"  \n[1]") and not batch.is_batch(b'{"a":[]}')
    assert isinstance(batch.load(b"[1"), rpc.Fault) and batch.load(b"[1").code == rpc.PARSE_ERROR
    assert batch.load(b"[]").code == rpc.INVALID_REQUEST
    assert batch.load(b"[" + b",".join([b"1"] * (batch.MAX_BATCH + 1)) + b"]").code == rpc.INVALID_REQUEST
    assert batch.allowed("2025-03-26") and not any(batch.allowed(v) for v in
                                                   ("2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28", None))


class EchoServer:
    """Stands in for the toolbox server: the transport's batch path is what is under test."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, ctx: McpContext, msg: rpc.Message) -> Reply:
        self.seen.append((ctx.client_version, msg.method or ""))
        return Reply(rpc.result(msg.id, {"method": msg.method}))


def _transport() -> tuple[McpTransport, EchoServer, SessionCodec]:
    server, codec = EchoServer(), SessionCodec([b"s"], ttl_seconds=60)
    return McpTransport(server, None, codec, None, None), server, codec  # type: ignore[arg-type]


def _session(codec: SessionCodec, version: str) -> dict[str, str]:
    state = SessionState(principal="k1", toolbox="box", client_version=version, expires=codec.expiry())
    return {"mcp-session-id": codec.seal(state)}


async def test_batch_answered_on_2025_03_26_in_order_without_notifications():
    transport, server, codec = _transport()
    body = (b'[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},'
            b'{"jsonrpc":"2.0","id":2,"method":"initialize"},7,{"jsonrpc":"2.0","id":"z","method":"ping"}]')
    reply = await transport.post(KEY, "box", _session(codec, "2025-03-26"), body, "r1")
    assert reply.status == 200
    answers = orjson.loads(reply.body)
    assert [a.get("id") for a in answers] == [1, 2, None, "z"]
    assert answers[1]["error"]["code"] == rpc.INVALID_REQUEST and answers[2]["error"]["code"] == rpc.INVALID_REQUEST
    assert server.seen == [("2025-03-26", "tools/list"), ("2025-03-26", "ping")]
    only = await transport.post(KEY, "box", _session(codec, "2025-03-26"), b'[{"jsonrpc":"2.0","method":"n"}]', "r")
    assert only.status == 202 and only.body is None


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
async def test_batch_refused_for_revisions_without_batches(version):
    transport, server, codec = _transport()
    reply = await transport.post(KEY, "box", _session(codec, version), b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',
                                 "r")
    assert reply.status == 400 and b"-32600" in reply.body and version.encode() in reply.body and not server.seen
    none = await transport.post(KEY, "box", {}, b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', "r")
    assert none.status == 400 and not server.seen
    foreign = await transport.post(KEY.model_copy(update={"key_id": "k2", "subject": "k2"}), "box",
                                   _session(codec, "2025-03-26"), b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', "r")
    assert foreign.status == 404 and not server.seen


# ---- sealed ids


def test_sealed_ids_bound_to_purpose_place_and_key():
    h = TaskHandle(principal="k1", toolbox="box", server="s", endpoint="s/primary", upstream_task="t-1",
                   upstream=UpstreamSession(version="2025-11-25", session_id="abc"))
    sealer = Sealer([b"secret"], purpose="mcptask1", deterministic=True)
    token = sealer.seal(h, bound_to="box")
    assert "t-1" not in token and "abc" not in token
    assert Sealer([b"other", b"secret"], purpose="mcptask1").open(token, TaskHandle, bound_to="box") == h  # rotation
    assert sealer.seal(h, bound_to="box") == token  # deterministic: one task, one id
    assert sealer.seal(h.model_copy(update={"principal": "k2"}), bound_to="box") != token
    for bad in (lambda: sealer.open(token, TaskHandle, bound_to="other-box"),
                lambda: Sealer([b"secret"], purpose="mcpother").open(token, TaskHandle, bound_to="box"),
                lambda: sealer.open(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], TaskHandle,
                                    bound_to="box"),
                lambda: sealer.open("x" * 5000, TaskHandle, bound_to="box"),
                lambda: sealer.open(12, TaskHandle, bound_to="box")):
        with pytest.raises(SealedInvalid):
            bad()
    random = Sealer([b"secret"], purpose="mcptask1")
    assert random.seal(h, bound_to="box") != random.seal(h, bound_to="box")


# ---- task shapes


T2025 = {"taskId": "up-1", "status": "working", "statusMessage": "busy", "createdAt": "2025-11-25T10:30:00Z",
         "lastUpdatedAt": "2025-11-25T10:40:00Z", "ttl": 60000, "pollInterval": 5000}
T2026 = {"resultType": "task", "taskId": "up-2", "status": "completed", "createdAt": "2026-07-28T10:30:00Z",
         "lastUpdatedAt": "2026-07-28T10:31:00Z", "ttlMs": None, "pollIntervalMs": 1000,
         "result": {"content": [], "isError": True}}


def test_created_task_detected_in_both_shapes():
    assert shapes.created({"task": T2025}) == T2025 and shapes.created(T2026) == T2026
    assert shapes.created({"content": []}) is None and shapes.created({"task": {"taskId": 3}}) is None


def test_task_shapes_convert_both_ways():
    as2026 = shapes.created_for("2026", T2025, "gw-1")
    assert as2026 == {"resultType": "task", "taskId": "gw-1", "status": "working", "statusMessage": "busy",
                      "createdAt": T2025["createdAt"], "lastUpdatedAt": T2025["lastUpdatedAt"], "ttlMs": 60000,
                      "pollIntervalMs": 5000}
    as2025 = shapes.created_for("2025", T2026, "gw-2", {"io.modelcontextprotocol/model-immediate-response": "wait",
                                                        "io.modelcontextprotocol/serverInfo": {"name": "s"}})
    assert as2025["_meta"] == {"io.modelcontextprotocol/model-immediate-response": "wait"}
    assert as2025["task"]["ttl"] is None and as2025["task"]["pollInterval"] == 1000
    assert as2025["task"]["status"] == "failed"  # 2025-11-25: an isError tool result fails the task
    assert "result" not in as2025["task"] and "resultType" not in as2025 and as2025["_meta"]
    assert shapes.to_2026(T2026, "x")["result"] == T2026["result"]  # 2026 inlines the result
    related = shapes.with_related({"content": [], "_meta": {"k": 1}}, "gw-3")
    assert related["_meta"] == {"k": 1, shapes.RELATED_TASK: {"taskId": "gw-3"}}


def _ctx(version: str) -> McpContext:
    return McpContext(principal=KEY, project_id="p1", toolbox="box", request_id="r", client_version=version)


def test_task_mode_and_capabilities_follow_the_clients_revision():
    ask = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a", "task": {}}})
    declare = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a", "_meta": {
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {shapes.TASKS_EXTENSION: {}}}}}})
    assert TaskBridge.mode(_ctx("2025-11-25"), ask) == "2025" and TaskBridge.mode(_ctx("2025-06-18"), ask) is None
    assert TaskBridge.mode(_ctx("2026-07-28"), declare) == "2026" and TaskBridge.mode(_ctx("2026-07-28"), ask) is None
    assert TaskBridge.capabilities("2025-11-25") == {"tasks": shapes.SERVER_CAPABILITY_2025}
    assert TaskBridge.capabilities("2026-07-28") == {"extensions": {shapes.TASKS_EXTENSION: {}}}
    assert TaskBridge.capabilities("2025-06-18") == {}


async def test_task_methods_refused_for_revisions_without_them():
    bridge = TaskBridge(None, None, None, Sealer([b"s"], purpose="mcptask1"), wait_seconds=1)  # type: ignore[arg-type]
    for version, method in (("2025-06-18", "tasks/get"), ("2026-07-28", "tasks/list"), ("2026-07-28", "tasks/result"),
                            ("2025-11-25", "tasks/update")):
        msg = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"taskId": "x"}})
        with pytest.raises(rpc.Fault) as err:
            await bridge.methods()[method](_ctx(version), msg)
        assert err.value.code == rpc.METHOD_NOT_FOUND


async def test_foreign_or_garbage_task_ids_are_not_found():
    sealer = Sealer([b"s"], purpose="mcptask1", deterministic=True)
    bridge = TaskBridge(None, None, None, sealer, wait_seconds=1)  # type: ignore[arg-type]
    theirs = sealer.seal(TaskHandle(principal="k2", toolbox="box", server="s", endpoint="s/p", upstream_task="t",
                                    upstream=UpstreamSession(version="2025-11-25")), bound_to="box")
    for tid in (theirs, "garbage", None):
        msg = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": tid}})
        with pytest.raises(rpc.Fault) as err:
            await bridge.get(_ctx("2025-11-25"), msg)
        assert err.value.code == rpc.INVALID_PARAMS and "not found" in err.value.message


# ---- legacy HTTP+SSE servers: the approval probe lists them over their own transport


def legacy_server(endpoint: str, pages: list[list[str]], posts: list[httpx.Request] | None = None
                  ) -> httpx.MockTransport:
    """A 2024-11-05 server: GET /sse streams an `endpoint` event, then answers each POSTed request on the stream
    (`posts` records them)."""
    queues: list[asyncio.Queue] = []

    async def stream(q: asyncio.Queue):
        yield f"event: endpoint\ndata: {endpoint}\n\n".encode()
        while (msg := await q.get()) is not None:
            yield f"event: message\ndata: {orjson.dumps(msg).decode()}\n\n".encode()

    def handle(req: httpx.Request) -> httpx.Response:
        if req.method == "GET":
            queues.append(asyncio.Queue())
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream(queues[-1]))
        if posts is not None:
            posts.append(req)
        msg = orjson.loads(req.content)
        q = queues[-1]
        if msg.get("method") == "initialize":
            q.put_nowait(rpc.result(msg["id"], {"protocolVersion": "2024-11-05", "capabilities": {},
                                                "serverInfo": {"name": "legacy", "version": "1"}}))
        elif msg.get("method") == "tools/list":
            page = int((msg.get("params") or {}).get("cursor") or 0)
            more = {"nextCursor": str(page + 1)} if page + 1 < len(pages) else {}
            q.put_nowait(rpc.result(msg["id"], {"tools": [{"name": n, "inputSchema": {"type": "object"}}
                                                          for n in pages[page]], **more}))
            q.put_nowait(None)
        return httpx.Response(202)

    return httpx.MockTransport(handle)


def _legacy(url: str) -> McpServer:
    return McpServer(id="old", project_id="p1", spec=McpServerSpec(id="old", url=url, namespace="old",
                                                                    transport="sse"))


async def _probe(transport: httpx.MockTransport, url: str):
    auth = OutboundAuthenticator(Settings(), httpx.AsyncClient())
    return await Prober(EgressPolicy(allow_private=True), httpx.AsyncClient(transport=transport), auth).probe(
        _legacy(url))


async def test_probe_lists_a_legacy_sse_server_every_page():
    found = await _probe(legacy_server("/messages?session=1", [["a", "b"], ["c"]]), "http://10.0.0.5/sse")
    assert [t.name for t in found.tools] == ["a", "b", "c"] and not found.failed, found.findings
    assert any(f.check == "speaks_mcp" and "2024-11-05" in f.message for f in found.findings)


async def test_probe_refuses_a_legacy_endpoint_on_another_origin():
    found = await _probe(legacy_server("http://169.254.169.254/latest/meta-data", [["a"]]), "http://10.0.0.5/sse")
    assert found.failed and not found.tools
    assert [f.check for f in found.findings if f.severity == "error"] == ["egress"]


# ---- the playground's trace comes from the pipeline's Exchange


def test_playground_trace_follows_the_exchange():
    from types import SimpleNamespace

    from shared.pillars.tools.playground import trace

    d = SimpleNamespace(source="mcp", server_id="s", original_name="add", pinned_hash="ab" * 32, sensitive=False)
    x = SimpleNamespace(entity=SimpleNamespace(definition=d), admission=SimpleNamespace(taken=[1]),
                        outcome=SimpleNamespace(target=SimpleNamespace(id="s/primary"), attempts=[1],
                                                upstream_ms=3.21), failed_attempts=[], status=200, overhead_ms=0.4)
    steps = trace(x, None, {"content": []})  # type: ignore[arg-type]
    assert [(s.step, s.ok) for s in steps] == [("resolve", True), ("validate_arguments", True), ("admission", True),
                                               ("send", True), ("request_log", True)]
    assert steps[3].detail.startswith("target s/primary") and steps[3].ms == 3.21
    assert [s.step for s in trace(None, {"code": -32602, "message": "Unknown tool: x"}, None)] == ["resolve"]
    bad = trace(SimpleNamespace(**{**vars(x), "admission": None, "outcome": None}),  # type: ignore[arg-type]
                {"code": -32602, "message": "Invalid params", "data": {"errors": ["a: not int"]}}, None)
    assert bad[-1].step == "validate_arguments" and not bad[-1].ok and "a: not int" in bad[-1].detail
    limited = trace(SimpleNamespace(**{**vars(x), "admission": None, "outcome": None}),  # type: ignore[arg-type]
                    {"code": -32031, "message": "rate limited"}, None)
    assert (limited[-1].step, limited[-1].ok) == ("admission", False)
    d.sensitive = True
    held = trace(SimpleNamespace(**{**vars(x), "admission": None, "outcome": None}),  # type: ignore[arg-type]
                 {"code": -32032, "message": "waits", "data": {"approvalId": "a1"}}, None)
    assert (held[-1].step, held[-1].ok) == ("per_call_approval", False) and "a1" in held[-1].detail
