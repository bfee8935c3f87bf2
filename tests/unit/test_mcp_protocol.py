"""The MCP protocol layer in process: JSON-RPC framing, revision negotiation, sealed sessions, bridging,
argument checks and the call digest."""
from __future__ import annotations

import pytest

from shared.pillars.tools.arguments import ArgumentsInvalid, SchemaCache, call_digest
from shared.pillars.tools.mcp import bridge
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp import revisions as rev
from shared.pillars.tools.mcp.session import SessionCodec, SessionInvalid, SessionState, UpstreamSession


# ---- JSON-RPC framing: malformed input is a Fault (a JSON-RPC error to send), never an exception


@pytest.mark.parametrize("raw, code", [
    (b"{", rpc.PARSE_ERROR), (b"\xff", rpc.PARSE_ERROR), (b"[]", rpc.INVALID_REQUEST), (b"3", rpc.INVALID_REQUEST),
    (b'{"id":1,"method":"x"}', rpc.INVALID_REQUEST), (b'{"jsonrpc":"2.0","id":true,"method":"x"}', rpc.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":{},"method":"x"}', rpc.INVALID_REQUEST), (b'{"jsonrpc":"2.0","id":1}', rpc.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":""}', rpc.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}', rpc.INVALID_PARAMS),
])
def test_malformed_messages_become_faults(raw, code):
    out = rpc.parse(raw)
    assert isinstance(out, rpc.Fault) and out.code == code
    assert out.body()["jsonrpc"] == "2.0" and out.body()["error"]["code"] == code


def test_message_kinds():
    req = rpc.parse(b'{"jsonrpc":"2.0","id":"a","method":"tools/list"}')
    note = rpc.parse(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    resp = rpc.parse(b'{"jsonrpc":"2.0","id":3,"result":{}}')
    assert isinstance(req, rpc.Message) and req.is_request and req.params == {}
    assert isinstance(note, rpc.Message) and note.is_notification
    assert isinstance(resp, rpc.Message) and resp.is_response


# ---- revisions


def test_handshake_choice_and_features():
    assert rev.choose_handshake("2025-03-26") == "2025-03-26"
    assert rev.choose_handshake("2099-01-01") == rev.LATEST_HANDSHAKE
    assert rev.choose_handshake(7) == rev.LATEST_HANDSHAKE
    assert not rev.has_elicitation("2025-03-26") and rev.has_elicitation("2025-06-18")
    assert not rev.at_least("zzz", "2024-11-05")  # unknown strings never unlock a feature


def _msg(method="tools/call", params=None):
    out = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
    assert isinstance(out, rpc.Message)
    return out


META = {rev.PROTOCOL_VERSION_KEY: "2026-07-28", rev.CLIENT_CAPABILITIES_KEY: {"elicitation": {}}}
HEADERS = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "a__b"}


def test_envelope_accepted_and_headers_must_match():
    env = rev.read_envelope(_msg(params={"name": "a__b", "_meta": META}), HEADERS)
    assert env.version == "2026-07-28" and "elicitation" in env.capabilities
    for header, value in (("mcp-name", "a__c"), ("mcp-method", "tools/list"), ("mcp-protocol-version", "x")):
        with pytest.raises(rpc.Fault) as err:
            rev.read_envelope(_msg(params={"name": "a__b", "_meta": META}), {**HEADERS, header: value})
        assert err.value.code == rpc.HEADER_MISMATCH


def test_envelope_missing_or_unsupported():
    with pytest.raises(rpc.Fault) as err:
        rev.read_envelope(_msg(params={"name": "a__b"}), HEADERS)
    assert err.value.code == rpc.INVALID_PARAMS
    meta = {**META, rev.PROTOCOL_VERSION_KEY: "2027-01-01"}
    with pytest.raises(rpc.Fault) as err:
        rev.read_envelope(_msg(params={"name": "a__b", "_meta": meta}), {**HEADERS, "mcp-protocol-version": "2027-01-01"})
    assert err.value.code == rpc.UNSUPPORTED_PROTOCOL_VERSION and "2026-07-28" in err.value.data["supported"]


# ---- sealed sessions


def _state(**kw) -> SessionState:
    return SessionState(principal="key-1", toolbox="box", client_version="2025-11-25", expires=2_000_000_000,
                        upstreams={"srv/primary": UpstreamSession(version="2025-06-18", session_id="abc")}, **kw)


def test_session_roundtrip_on_another_instance():
    sid = SessionCodec([b"secret"], ttl_seconds=60).seal(_state())
    other = SessionCodec([b"secret"], ttl_seconds=60)  # another instance, same configuration
    state = other.open(sid, toolbox="box", principal="key-1")
    assert state.upstreams["srv/primary"].session_id == "abc"
    assert "abc" not in sid and "key-1" not in sid  # encrypted, not just signed


def test_session_refused_for_another_toolbox_principal_key_or_tamper():
    sid = SessionCodec([b"secret"], ttl_seconds=60).seal(_state())
    codec = SessionCodec([b"secret"], ttl_seconds=60)
    for kwargs in ({"toolbox": "other", "principal": "key-1"}, {"toolbox": "box", "principal": "key-2"}):
        with pytest.raises(SessionInvalid):
            codec.open(sid, **kwargs)
    with pytest.raises(SessionInvalid):
        SessionCodec([b"another"], ttl_seconds=60).open(sid, toolbox="box", principal="key-1")
    tampered = sid[:-2] + ("A" if sid[-2] != "A" else "B") + sid[-1]
    for bad in (tampered, "x", "", "mcpgw1..", "mcpgw1." + sid.split(".")[1] + ".!!!", "é" * 10, "a" * 5000):
        with pytest.raises(SessionInvalid):
            codec.open(bad, toolbox="box", principal="key-1")


def test_session_key_rotation_and_expiry():
    old = SessionCodec([b"old"], ttl_seconds=60).seal(_state())
    rotated = SessionCodec([b"new", b"old"], ttl_seconds=60)  # new seals, old still opens
    assert rotated.open(old, toolbox="box", principal="key-1")
    new = rotated.seal(_state())
    assert SessionCodec([b"new"], ttl_seconds=60).open(new, toolbox="box", principal="key-1")
    now = [1000.0]
    clocked = SessionCodec([b"k"], ttl_seconds=60, clock=lambda: now[0])
    sid = clocked.seal(_state(elicitation=True).model_copy(update={"expires": clocked.expiry()}))
    assert clocked.open(sid, toolbox="box", principal="key-1").elicitation
    now[0] += 61
    with pytest.raises(SessionInvalid):
        clocked.open(sid, toolbox="box", principal="key-1")


# ---- bridging


def test_modern_client_gets_result_type_and_cache_fields():
    out = bridge.to_client({"tools": []}, method="tools/list", client_version="2026-07-28", ttl_ms=5)
    assert out == {"tools": [], "resultType": "complete", "ttlMs": 5, "cacheScope": "private"}
    assert bridge.to_client({"content": []}, method="tools/call", client_version="2026-07-28")["resultType"] == \
        "complete"


def test_2025_client_never_sees_2026_fields_and_old_clients_no_structured_output():
    modern = {"content": [], "structuredContent": {"x": 1}, "resultType": "complete", "ttlMs": 1, "cacheScope": "public"}
    out = bridge.to_client(modern, method="tools/call", client_version="2025-11-25")
    assert out == {"content": [], "structuredContent": {"x": 1}}
    old = bridge.to_client(modern, method="tools/call", client_version="2025-03-26")
    assert old == {"content": [{"type": "text", "text": '{"x":1}'}]}
    tools = bridge.to_client({"tools": [{"name": "a", "inputSchema": {}, "outputSchema": {}, "title": "T",
                                         "icons": []}]}, method="tools/list", client_version="2025-06-18")
    assert tools["tools"] == [{"name": "a", "inputSchema": {}, "outputSchema": {}, "title": "T"}]


def test_envelope_keys_are_not_forwarded_upstream():
    params = {"name": "x", "_meta": {rev.PROTOCOL_VERSION_KEY: "2026-07-28", "progressToken": 3}}
    assert bridge.strip_envelope(params) == {"name": "x", "_meta": {"progressToken": 3}}


# ---- arguments and digests


def test_arguments_validated_against_schema():
    schemas = SchemaCache()
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    schemas.check(schema, {"a": 1})
    with pytest.raises(ArgumentsInvalid) as err:
        schemas.check(schema, {"a": "x"})
    assert err.value.errors[0]["field"] == "a"
    with pytest.raises(ArgumentsInvalid):  # an invalid approved schema refuses everything, never allows
        schemas.check({"type": 12}, {})


def test_validators_compiled_once_per_pinned_hash_and_never_for_another_schema():
    schemas = SchemaCache()
    pinned = "sha256:" + "a" * 64
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    first = schemas.validator(schema, pinned)
    assert schemas.validator(schema, pinned) is first                   # same object: no digest, no compile
    assert schemas.validator(dict(schema), pinned) is first             # an equal copy (a refreshed snapshot)
    other = {"type": "object", "properties": {"a": {"type": "string"}}}  # same key, another schema: recompiled
    schemas.check(other, {"a": "x"}, pinned)
    with pytest.raises(ArgumentsInvalid):
        schemas.check(other, {"a": 1}, pinned)
    for _ in range(2):  # an invalid schema under a pinned key refuses every time (cached or not)
        with pytest.raises(ArgumentsInvalid):
            schemas.check({"type": 12}, {}, "sha256:" + "b" * 64)


def test_call_digest_is_canonical():
    assert call_digest("t", {"a": 1, "b": [1, 2]}) == call_digest("t", {"b": [1, 2], "a": 1})
    assert call_digest("t", {"a": 1}) != call_digest("t", {"a": 2}) != call_digest("u", {"a": 1})
