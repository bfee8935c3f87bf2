"""JSON-RPC 2.0 framing for MCP. Malformed input becomes a JSON-RPC error object, never an exception that could
turn into an HTTP 5xx: `parse` returns either a `Message` or a `Fault` (the error response to send)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP's own codes (spec 2026-07-28 schema: HeaderMismatchError, MissingRequiredClientCapabilityError,
# UnsupportedProtocolVersionError; 2025-11-25: URL elicitation required).
CONNECTION_CLOSED = -32000
REQUEST_TIMEOUT = -32001
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
# Gateway-defined codes (JSON-RPC reserves -32000..-32099 for implementation-defined server errors).
GOVERNANCE_REFUSED = -32030  # forbidden by policy: tool not allowed, not approved, quarantined
RATE_LIMITED = -32031        # quota/rate limit; data.retryAfterSeconds
APPROVAL_PENDING = -32032    # a sensitive call waits for an approver; data.approvalId, data.retryAfterSeconds
UPSTREAM_ERROR = -32033      # the MCP server could not be reached or answered garbage
RESULT_TOO_LARGE = -32034
INPUT_NOT_RELAYED = -32035  # a server asked for input this client's revision cannot give through a stateless gateway

RequestId = str | int


@dataclass(frozen=True)
class Message:
    """One request (has `id`), notification (no `id`) or response (`result`/`error`) from a peer."""

    raw: dict[str, Any]
    method: str | None = None
    id: RequestId | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.method is not None and "id" in self.raw

    @property
    def is_notification(self) -> bool:
        return self.method is not None and "id" not in self.raw

    @property
    def is_response(self) -> bool:
        return self.method is None


@dataclass(frozen=True)
class Fault(Exception):
    """A JSON-RPC error to answer with (`id` None when the request's id could not be read)."""

    code: int
    message: str
    id: RequestId | None = None
    data: Any = None

    def body(self) -> dict[str, Any]:
        return error(self.id, self.code, self.message, self.data)


def error(id_: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def result(id_: RequestId | None, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def request(id_: RequestId, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def _valid_id(value: Any) -> bool:
    # JSON-RPC allows string or number ids; MCP forbids null ids on requests; bool is not a number here.
    return (isinstance(value, str) and len(value) <= 256) or (isinstance(value, int) and not isinstance(value, bool)
                                                             and -(2**53) <= value <= 2**53)


def parse(raw: bytes) -> Message | Fault:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Fault(PARSE_ERROR, "Parse error: the body is not valid JSON.")
    return parse_object(data)


def parse_object(data: Any) -> Message | Fault:
    if isinstance(data, list):  # batches were removed from MCP in 2025-06-18; never accepted here
        return Fault(INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported.")
    if not isinstance(data, dict):
        return Fault(INVALID_REQUEST, "Invalid Request: expected a JSON-RPC object.")
    id_ = data.get("id")
    known_id = id_ if _valid_id(id_) else None
    if data.get("jsonrpc") != "2.0":
        return Fault(INVALID_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\".", known_id)
    if "id" in data and not _valid_id(id_):
        return Fault(INVALID_REQUEST, "Invalid Request: 'id' must be a string or an integer.")
    method = data.get("method")
    if method is None:
        if "id" in data and (("result" in data) ^ ("error" in data)):
            return Message(raw=data, id=id_)
        return Fault(INVALID_REQUEST, "Invalid Request: 'method' is missing.", known_id)
    if not isinstance(method, str) or not 0 < len(method) <= 128:
        return Fault(INVALID_REQUEST, "Invalid Request: 'method' must be a non-empty string.", known_id)
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return Fault(INVALID_PARAMS, "Invalid params: MCP params must be an object.", known_id)
    return Message(raw=data, method=method, id=id_, params=params)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
