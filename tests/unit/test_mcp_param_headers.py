"""`Mcp-Param-*` headers the gateway sends a 2026 server: the same headers the official SDK's client emits for the
same schema and arguments (checked against the SDK itself, in its own venv), none for a schema that breaks a rule,
and they reach the server with the call (only a 2026 one)."""
from __future__ import annotations

import json
import subprocess

import httpx
import orjson

from shared.pillars.tools.mcp import param_headers as ph
from shared.pillars.tools.mcp.session import UpstreamSession
from shared.pillars.tools.mcp.upstream import Endpoint, McpUpstream
from tests.support.mcp_servers import fastmcp_python

S = {"type": "object", "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "n": {"type": "integer", "x-mcp-header": "Count"},
    "flag": {"type": "boolean", "x-mcp-header": "Flag"},
    "where": {"type": "object", "properties": {"city": {"type": "string", "x-mcp-header": "City"}}},
    "plain": {"type": "string"}}}
CASES = [
    (S, {"region": "eu-west", "n": 3, "flag": True, "where": {"city": "Zürich"}, "plain": "x"}),
    (S, {"region": "  padded ", "flag": False, "where": "not an object"}),
    (S, {"region": None, "n": 12345678901234567890}),
    ({"type": "object", "properties": {"a": {"type": "number", "x-mcp-header": "A"}}}, {"a": 1.5}),  # number: invalid
    ({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "A"},
                                       "b": {"type": "string", "x-mcp-header": "a"}}}, {"a": "1", "b": "2"}),  # dup
    ({"type": "object", "properties": {"a": {"type": "string", "x-mcp-header": "bad token"}}}, {"a": "1"}),
    ({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string", "x-mcp-header": "I"}}}},
     {"l": ["x"]}),  # off the properties chain
    ({"type": "object", "x-mcp-header": "Root", "properties": {}}, {}),
]


def test_the_headers_are_the_official_sdks():
    script = ("import json,sys\nfrom mcp.shared.inbound import find_invalid_x_mcp_header as bad, "
              "x_mcp_header_map as m, mcp_param_headers as h\n"
              "print(json.dumps([{} if bad(s) else h(m(s), a) for s, a in json.load(sys.stdin)]))")
    out = subprocess.run([fastmcp_python(), "-c", script], input=json.dumps(CASES), capture_output=True, text=True,
                         check=True, timeout=120).stdout
    ours = [ph.headers_for(ph.header_map(schema), args) for schema, args in CASES]
    assert ours == json.loads(out)
    assert ours[0] == {"Mcp-Param-Region": "eu-west", "Mcp-Param-Count": "3", "Mcp-Param-Flag": "true",
                       "Mcp-Param-City": "=?base64?WsO8cmljaA==?="}
    assert ours[3:] == [{}] * 5


def test_the_walk_is_cached_by_pinned_hash():
    first = ph.header_map(S, "sha256:" + "1" * 64)
    assert ph.header_map({}, "sha256:" + "1" * 64) is first  # the same pinned definition is not walked again


async def test_a_2026_server_gets_them_with_the_call_and_a_2025_one_does_not():
    sent: list[httpx.Headers] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers)
        msg = orjson.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": msg["id"], "result": {"content": []}})

    upstream = McpUpstream(httpx.AsyncClient(transport=httpx.MockTransport(handle)), timeout=5, max_bytes=1 << 16)
    ep, mirrored = Endpoint(id="s/primary", url="https://s.example/mcp"), {"Mcp-Param-Region": "eu-west"}
    for version in ("2026-07-28", "2025-11-25"):
        await upstream.request(ep, UpstreamSession(version=version, session_id=None), "tools/call",
                               {"name": "route", "arguments": {"region": "eu-west"}}, headers=mirrored)
    assert sent[0]["mcp-param-region"] == "eu-west" and "mcp-param-region" not in sent[1]


INBOUND = [  # (arguments, headers a client sent): accepted exactly when the official SDK's server accepts them
    ({"region": "eu", "n": 3}, {"mcp-param-region": "eu", "mcp-param-count": "3"}),
    ({"region": "eu"}, {"mcp-param-region": "eu"}),
    ({"region": "eu"}, {}),                                                  # missing
    ({"region": "eu"}, {"mcp-param-region": "us"}),                          # different
    ({}, {"mcp-param-region": "eu"}),                                        # header without argument
    ({"region": None}, {}),                                                  # null is absent
    ({"n": 42.0}, {"mcp-param-count": "42"}),                                # integer, numerically equal
    ({"n": 42}, {"mcp-param-count": "42.5"}),
    ({"where": {"city": "Zürich"}}, {"mcp-param-city": "=?base64?WsO8cmljaA==?="}),
    ({"where": {"city": "Zürich"}}, {"mcp-param-city": "=?base64?broken?="}),
    ({"flag": True}, {"mcp-param-flag": "true"}),
    ({"flag": True}, {"mcp-param-flag": "True"}),
    ({"plain": "x"}, {"mcp-param-plain": "x"}),                              # not marked: not checked
]


def test_inbound_headers_are_checked_as_the_official_sdk_checks_them():
    script = ("import json,sys\nfrom mcp.shared.inbound import validate_mcp_param_headers as v\n"
              "s, cases = json.load(sys.stdin)\n"
              "print(json.dumps([v(s, a, h) is None for a, h in cases]))")
    out = subprocess.run([fastmcp_python(), "-c", script], input=json.dumps([S, INBOUND]), capture_output=True,
                         text=True, check=True, timeout=120).stdout
    mapping = ph.header_map(S)
    ours = [ph.mismatch(mapping, args, headers) is None for args, headers in INBOUND]
    assert ours == json.loads(out)
    assert ours == [True, True, False, False, False, True, True, False, True, False, True, False, True]
