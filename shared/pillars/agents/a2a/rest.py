"""A2A v1.0 HTTP+JSON (REST) binding on the client side of the gateway: the REST request → the v1.0 method and
params the rest of the gateway speaks (the same `RpcCall` a JSON-RPC client produces), and the answer — a JSON-RPC
envelope from the upstream, whatever binding it speaks — back to REST: the bare result, or a `google.rpc.Status`
error (`{"error": {"code": <http>, "status": <grpc>, "message", "details": [ErrorInfo{reason, domain}]}}`) with
the HTTP status the spec's error mapping gives (TaskNotFound → 404, UnsupportedOperation → 400, …).

Paths (relative to the agent's interface URL, as a2a-sdk's RestTransport calls them):
POST /message:send · POST /message:stream · GET /tasks/{id} · GET /tasks · POST /tasks/{id}:cancel ·
POST|GET /tasks/{id}:subscribe · GET /extendedAgentCard. Streams are SSE whose data is a bare StreamResponse; an
error mid-stream is an `event: error` whose data is the Status payload."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ....errors import GatewayError
from .protocol import (CONTENT_TYPE_NOT_SUPPORTED, EXTENDED_CARD_NOT_CONFIGURED, INTERNAL_ERROR,
                       INVALID_AGENT_RESPONSE, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
                       PUSH_NOT_SUPPORTED, TASK_NOT_CANCELABLE, TASK_NOT_FOUND, UNSUPPORTED_OPERATION,
                       VERSION_NOT_SUPPORTED, A2AError)

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
A2A_DOMAIN = "a2a-protocol.org"
GATEWAY_DOMAIN = "gateway.a2a"
# JSON-RPC code → (HTTP status, gRPC status, ErrorInfo reason): the A2A spec's mapping table.
_BY_CODE: dict[int, tuple[int, str, str]] = {
    TASK_NOT_FOUND: (404, "NOT_FOUND", "TASK_NOT_FOUND"),
    TASK_NOT_CANCELABLE: (400, "FAILED_PRECONDITION", "TASK_NOT_CANCELABLE"),
    PUSH_NOT_SUPPORTED: (400, "FAILED_PRECONDITION", "PUSH_NOTIFICATION_NOT_SUPPORTED"),
    UNSUPPORTED_OPERATION: (400, "FAILED_PRECONDITION", "UNSUPPORTED_OPERATION"),
    CONTENT_TYPE_NOT_SUPPORTED: (400, "INVALID_ARGUMENT", "CONTENT_TYPE_NOT_SUPPORTED"),
    INVALID_AGENT_RESPONSE: (502, "INTERNAL", "INVALID_AGENT_RESPONSE"),
    EXTENDED_CARD_NOT_CONFIGURED: (400, "FAILED_PRECONDITION", "EXTENDED_AGENT_CARD_NOT_CONFIGURED"),
    VERSION_NOT_SUPPORTED: (400, "FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED"),
    INVALID_PARAMS: (400, "INVALID_ARGUMENT", "INVALID_PARAMS"),
    INVALID_REQUEST: (400, "INVALID_ARGUMENT", "INVALID_REQUEST"),
    PARSE_ERROR: (400, "INVALID_ARGUMENT", "INVALID_REQUEST"),
    METHOD_NOT_FOUND: (404, "NOT_FOUND", "METHOD_NOT_FOUND"),
    INTERNAL_ERROR: (502, "INTERNAL", "INTERNAL_ERROR"),
}
_GRPC_OF_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ABORTED", 410: "NOT_FOUND", 413: "OUT_OF_RANGE", 422: "INVALID_ARGUMENT",
                 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_MAX_PAGE_SIZE, _MAX_HISTORY = 100, 1000


def status_payload(http: int, grpc: str, message: str, reason: str, domain: str = A2A_DOMAIN,
                   metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    info = {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": dict(metadata or {})}
    return {"error": {"code": http, "status": grpc, "message": message, "details": [info]}}


def a2a_error(code: int, message: str, data: Any = None) -> tuple[int, dict[str, Any]]:
    """A JSON-RPC error (code, message, data) as (HTTP status, Status payload)."""
    http, grpc, reason = _BY_CODE.get(code, (502, "INTERNAL", "INTERNAL_ERROR"))
    metadata = {str(k)[:64]: str(v)[:500] for k, v in list(data.items())[:16]} if isinstance(data, dict) else {}
    if isinstance(data, dict) and isinstance(data.get("error"), dict):  # a gateway refusal carried in JSON-RPC
        inner = data["error"]
        metadata = {"code": str(inner.get("code", ""))[:64], "type": str(inner.get("type", ""))[:64]}
        return http, status_payload(http, grpc, message, metadata["code"].upper(), GATEWAY_DOMAIN, metadata)
    return http, status_payload(http, grpc, message, reason, metadata=metadata)


def gateway_error(exc: GatewayError) -> tuple[int, dict[str, Any]]:
    """A governance refusal (auth, quota, lifecycle, limits) in REST form, with the gateway's own HTTP status."""
    grpc = _GRPC_OF_HTTP.get(exc.status, "INTERNAL" if exc.status >= 500 else "FAILED_PRECONDITION")
    return exc.status, status_payload(exc.status, grpc, exc.message, exc.code.upper(), GATEWAY_DOMAIN,
                                      {"code": exc.code, "type": exc.type})


def frame(envelope: dict[str, Any]) -> tuple[int, bytes]:
    """A JSON-RPC response envelope → (HTTP status, REST body)."""
    if "error" in envelope:
        err = envelope["error"]
        status, body = a2a_error(int(err.get("code", INTERNAL_ERROR)), str(err.get("message", "")), err.get("data"))
        return status, orjson.dumps(body)
    return 200, orjson.dumps(envelope.get("result"))


def event(envelope: dict[str, Any]) -> bytes:
    """One streamed JSON-RPC envelope → one SSE event of the REST binding."""
    if "error" in envelope:
        err = envelope["error"]
        _, body = a2a_error(int(err.get("code", INTERNAL_ERROR)), str(err.get("message", "")), err.get("data"))
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    return b"data: " + orjson.dumps(envelope.get("result")) + b"\n\n"


# ---- requests

def body_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise A2AError(PARSE_ERROR, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise A2AError(INVALID_REQUEST, "The body must be a JSON object.")
    return body


def _int(query: Mapping[str, str], name: str, lo: int, hi: int) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = lo - 1
    if not lo <= n <= hi:
        raise A2AError(INVALID_PARAMS, f"{name} must be an integer from {lo} to {hi}.")
    return n


def _put(params: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        params[name] = value


def get_task_params(task_id: str, query: Mapping[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {"id": task_id}
    _put(params, "historyLength", _int(query, "historyLength", 0, _MAX_HISTORY))
    return params


def list_tasks_params(query: Mapping[str, str]) -> dict[str, Any]:
    """ListTasks' query parameters (camelCase, as the spec names them), bounded; unknown ones are ignored."""
    params: dict[str, Any] = {}
    for name in ("contextId", "status", "pageToken", "statusTimestampAfter"):
        value = query.get(name)
        if value:
            if len(value) > 512:
                raise A2AError(INVALID_PARAMS, f"{name} is longer than 512 characters.")
            params[name] = value
    _put(params, "pageSize", _int(query, "pageSize", 1, _MAX_PAGE_SIZE))
    _put(params, "historyLength", _int(query, "historyLength", 0, _MAX_HISTORY))
    flag = query.get("includeArtifacts")
    if flag is not None:
        if flag not in ("true", "false"):
            raise A2AError(INVALID_PARAMS, "includeArtifacts must be true or false.")
        params["includeArtifacts"] = flag == "true"
    return params


def task_action(segment: str) -> tuple[str, str]:
    """`{id}:cancel` / `{id}:subscribe` (one path segment: Azure routes cannot mix a parameter and a literal) →
    (task id, v1.0 method)."""
    task_id, sep, verb = segment.rpartition(":")
    method = {"cancel": "CancelTask", "subscribe": "SubscribeToTask"}.get(verb)
    if not sep or not task_id or method is None:
        raise A2AError(METHOD_NOT_FOUND, "Use POST /tasks/{id}:cancel or /tasks/{id}:subscribe.")
    return task_id, method
