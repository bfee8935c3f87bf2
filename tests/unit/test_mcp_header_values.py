"""2026-07-28 header values (`Mcp-Name`): the gateway encodes and decodes them as the official SDK does, accepts a
base64-wrapped `Mcp-Name` that matches the body, refuses one that does not (or does not decode), and sends the
header for every name-bearing request, wrapped when the name is not plain ASCII."""
from __future__ import annotations

import json
import subprocess

import pytest

from shared.pillars.tools.mcp import header_values as hv
from shared.pillars.tools.mcp import jsonrpc as rpc
from shared.pillars.tools.mcp import revisions as rev
from tests.support.mcp_servers import fastmcp_python

SAMPLES = ["plain", "ümlaut", "日本語", " edge ", "tab\there", "=?base64?aGk=?=", "", "weather://城市/北京"]
META = {rev.PROTOCOL_VERSION_KEY: "2026-07-28", rev.CLIENT_CAPABILITIES_KEY: {}}


def test_values_round_trip_and_corrupt_wrappers_are_none():
    for value in SAMPLES:
        assert hv.decode(hv.encode(value)) == value
    assert hv.encode("plain") == "plain" and hv.encode("ü").startswith("=?base64?")
    for corrupt in ("=?base64?not base64!?=", "=?base64?aGl=?=", "=?base64?/w==?="):  # bad, non-canonical, not UTF-8
        assert hv.decode(corrupt) is None


def test_the_official_sdk_encodes_and_decodes_the_same():
    script = ("import json,sys; from mcp.shared.inbound import encode_header_value as e, decode_header_value as d; "
              "v=json.load(sys.stdin); print(json.dumps([[e(x), d(e(x))] for x in v]))")
    out = subprocess.run([fastmcp_python(), "-c", script], input=json.dumps(SAMPLES), capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert json.loads(out) == [[hv.encode(v), v] for v in SAMPLES]


def _read(uri: str, name_header: str | None) -> rev.Envelope:
    msg = rpc.parse_object({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
                            "params": {"uri": uri, "_meta": META}})
    assert isinstance(msg, rpc.Message)
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "resources/read"}
    if name_header is not None:
        headers["mcp-name"] = name_header
    return rev.read_envelope(msg, headers)


def test_a_wrapped_mcp_name_is_compared_decoded():
    uri = "weather://城市/北京"
    assert _read(uri, hv.encode(uri)).version == "2026-07-28"
    for wrong in (hv.encode("weather://other"), "=?base64?not base64!?=", None):
        with pytest.raises(rpc.Fault) as fault:
            _read(uri, wrong)
        assert fault.value.code == rpc.HEADER_MISMATCH


def test_outbound_headers_carry_every_name_encoded():
    assert rev.modern_headers("2026-07-28", "resources/read", {"uri": "weather://城市"})["Mcp-Name"] == \
        hv.encode("weather://城市")
    assert rev.modern_headers("2026-07-28", "tools/call", {"name": "add"})["Mcp-Name"] == "add"
    assert "Mcp-Name" not in rev.modern_headers("2026-07-28", "tools/list", {})
