"""MCP protocol revisions and per-side negotiation.

Two eras (read from each revision's schema.ts / changelog): the handshake era (2024-11-05 … 2025-11-25: an
`initialize` request picks the version, HTTP sessions via `Mcp-Session-Id`) and the per-request era (2026-07-28:
no `initialize`, no session; every request carries `_meta["io.modelcontextprotocol/protocolVersion"]` and
`_meta["io.modelcontextprotocol/clientCapabilities"]`, mirrored in the `MCP-Protocol-Version`, `Mcp-Method` and
`Mcp-Name` headers; a mismatch is -32020 with HTTP 400). The gateway negotiates with the client and with every
upstream server independently; `bridge.py` converts between what each side speaks.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import header_values
from . import jsonrpc as rpc

HANDSHAKE = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN = ("2026-07-28",)
KNOWN = (*HANDSHAKE, *MODERN)
LATEST_HANDSHAKE = HANDSHAKE[-1]
LATEST_MODERN = MODERN[-1]
# Revisions whose HTTP transport is the 2024-11-05 HTTP+SSE one (GET /sse → `endpoint` event → POST messages).
LEGACY_SSE = "2024-11-05"

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"

VERSION_HEADER = "mcp-protocol-version"
SESSION_HEADER = "mcp-session-id"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
# Which params field the `Mcp-Name` header mirrors (2026-07-28 transports: tools/call, prompts/get, resources/read).
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def at_least(version: str, minimum: str) -> bool:
    """Unknown versions compare as old (a peer's unrecognised string never unlocks a feature)."""
    return version in KNOWN and KNOWN.index(version) >= KNOWN.index(minimum)


def is_modern(version: str) -> bool:
    return version in MODERN


def has_elicitation(version: str) -> bool:
    return at_least(version, "2025-06-18")


def has_structured_output(version: str) -> bool:
    return at_least(version, "2025-06-18")


def needs_version_header(version: str) -> bool:
    # 2025-06-18 made `MCP-Protocol-Version` mandatory on every request after initialize.
    return at_least(version, "2025-06-18")


def choose_handshake(requested: Any) -> str:
    """The server side of `initialize`: the client's version if we speak it, else our latest handshake one (the
    client then decides whether it can continue)."""
    return requested if isinstance(requested, str) and requested in HANDSHAKE else LATEST_HANDSHAKE


@dataclass(frozen=True)
class Envelope:
    """A 2026-07-28 request's per-request fields."""

    version: str
    capabilities: dict[str, Any]
    client_info: dict[str, Any] | None


def read_envelope(msg: rpc.Message, headers: Mapping[str, str]) -> Envelope:
    """Validate a per-request-era request: envelope present, headers agree with the body, version supported.
    Raises `rpc.Fault` (order as the spec's validation ladder: shape, header mismatch, version)."""
    meta = msg.params.get("_meta")
    if not isinstance(meta, dict) or PROTOCOL_VERSION_KEY not in meta or CLIENT_CAPABILITIES_KEY not in meta:
        raise rpc.Fault(rpc.INVALID_PARAMS, f"params._meta must carry '{PROTOCOL_VERSION_KEY}' and "
                                            f"'{CLIENT_CAPABILITIES_KEY}'.", msg.id)
    version = meta[PROTOCOL_VERSION_KEY]
    if headers.get(VERSION_HEADER) != version:
        raise rpc.Fault(rpc.HEADER_MISMATCH, "MCP-Protocol-Version header does not match the request's "
                                             "_meta protocol version.", msg.id)
    if headers.get(METHOD_HEADER) != msg.method:
        raise rpc.Fault(rpc.HEADER_MISMATCH, "Mcp-Method header does not match the request's method.", msg.id)
    name_key = NAME_BEARING.get(msg.method or "")
    if name_key and msg.params.get(name_key) is not None and \
            header_values.decode(headers.get(NAME_HEADER)) != msg.params[name_key]:
        raise rpc.Fault(rpc.HEADER_MISMATCH, f"Mcp-Name header does not match params.{name_key}.", msg.id)
    if not isinstance(version, str) or version not in MODERN:
        raise rpc.Fault(rpc.UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version.", msg.id,
                        {"requested": version if isinstance(version, str) else repr(version)[:64],
                         "supported": list(KNOWN)})
    caps = meta[CLIENT_CAPABILITIES_KEY]
    if not isinstance(caps, dict):
        raise rpc.Fault(rpc.INVALID_PARAMS, f"'{CLIENT_CAPABILITIES_KEY}' must be an object.", msg.id)
    info = meta.get(CLIENT_INFO_KEY)
    return Envelope(version=version, capabilities=caps, client_info=info if isinstance(info, dict) else None)


def modern_meta(version: str, capabilities: dict[str, Any] | None = None,
                client_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `_meta` the gateway sends to a 2026 upstream as a client."""
    meta: dict[str, Any] = {PROTOCOL_VERSION_KEY: version, CLIENT_CAPABILITIES_KEY: capabilities or {}}
    if client_info:
        meta[CLIENT_INFO_KEY] = client_info
    return meta


def modern_headers(version: str, method: str, params: Mapping[str, Any]) -> dict[str, str]:
    headers = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    name_key = NAME_BEARING.get(method)
    if name_key and isinstance(params.get(name_key), str):
        headers["Mcp-Name"] = header_values.encode(params[name_key])
    return headers
