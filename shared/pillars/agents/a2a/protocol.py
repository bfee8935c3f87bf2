"""A2A over JSON-RPC 2.0: the method tables of v1.0 and v0.3, the spec's error codes, and envelope parsing.

The version of an inbound call is read from the method name (v1.0 methods are PascalCase, v0.3 ones are
`noun/verb`), checked against the `A2A-Version` header when the client sent one (absent means 0.3, as the spec
says). Every refusal is a JSON-RPC error object; bad input never becomes an HTTP 5xx."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

V1, V03 = "1.0", "0.3"

# v1.0 method → v0.3 method (None: the v0.3 protocol has no such method).
V1_TO_V03: dict[str, str | None] = {
    "SendMessage": "message/send",
    "SendStreamingMessage": "message/stream",
    "GetTask": "tasks/get",
    "ListTasks": None,
    "CancelTask": "tasks/cancel",
    "SubscribeToTask": "tasks/resubscribe",
    "GetExtendedAgentCard": "agent/getAuthenticatedExtendedCard",
}
V03_TO_V1: dict[str, str] = {v: k for k, v in V1_TO_V03.items() if v is not None}
STREAMING = frozenset({"SendStreamingMessage", "SubscribeToTask"})
# Push notifications make the gateway post to a URL a client names: not proxied (egress), answered -32003.
PUSH_V1 = frozenset({"CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig",
                     "ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig"})
PUSH_V03 = frozenset({"tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get",
                      "tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete"})

# JSON-RPC 2.0 and A2A error codes (A2A spec, "Error Handling").
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, PUSH_NOT_SUPPORTED, UNSUPPORTED_OPERATION = -32001, -32002, -32003, -32004
CONTENT_TYPE_NOT_SUPPORTED, INVALID_AGENT_RESPONSE, EXTENDED_CARD_NOT_CONFIGURED = -32005, -32006, -32007
VERSION_NOT_SUPPORTED = -32009
# Gateway governance refusals (auth, quota, lifecycle, limits) use the implementation-defined server-error range;
# `data.error` carries the gateway's own structured error.
GATEWAY_REFUSED = -32000


class A2AError(Exception):
    """A protocol error answered as a JSON-RPC error object (HTTP 200, as JSON-RPC over HTTP does)."""

    def __init__(self, code: int, message: str, data: Any = None, status: int = 200,
                 rid: str | int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data, self.status, self.rid = code, message, data, status, rid


@dataclass(slots=True)
class RpcCall:
    """One inbound call, normalised: `method` is the v1.0 name, `params` the v1.0 shape; `version` is what the
    client speaks (its answer goes back in that version)."""

    id: str | int | None
    method: str
    params: dict[str, Any]
    version: str
    binding: str = "jsonrpc"  # how the client called: "jsonrpc" or "http_json" (the answer is framed the same way)


def parse_call(raw: bytes) -> tuple[str | int | None, str, dict[str, Any]]:
    """The envelope: (id, method as sent, params). Raises A2AError with the JSON-RPC code for each fault."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise A2AError(PARSE_ERROR, "Parse error: the body is not valid JSON.") from None
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
        rid = _safe_id(body.get("id")) if isinstance(body, dict) else None
        raise A2AError(INVALID_REQUEST, "Invalid Request: a JSON-RPC 2.0 object with a method is required.", rid=rid)
    rid = _safe_id(body.get("id"))
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise A2AError(INVALID_PARAMS, "Invalid params: params must be an object.", rid=rid)
    return rid, body["method"], params


def version_of(method: str, header_version: str | None) -> str:
    """Which protocol the client speaks; refuses an `A2A-Version` the gateway does not serve."""
    method_version = V1 if method in V1_TO_V03 or method in PUSH_V1 else V03 if (
        method in V03_TO_V1 or method in PUSH_V03) else None
    if method_version is None:
        raise A2AError(METHOD_NOT_FOUND, f"Method not found: {method[:100]}.")
    if header_version:
        major_minor = ".".join(header_version.strip().split(".")[:2])
        if major_minor not in (V1, V03):
            raise A2AError(VERSION_NOT_SUPPORTED, f"A2A-Version {header_version[:20]} is not supported; "
                           "this gateway serves 1.0 and 0.3.", data={"supported": [V1, V03]})
    return method_version


def _safe_id(rid: Any) -> str | int | None:
    return rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None


def result(rid: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": value}


def error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": err}
