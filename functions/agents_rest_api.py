"""A2A v1.0 HTTP+JSON (REST) binding of every published agent, next to its JSON-RPC endpoint (same base URL, as
the gateway's card lists both). Each REST call becomes the same v1.0 method the JSON-RPC endpoint runs, on the
same pipeline, whatever the upstream speaks (JSON-RPC 1.0 or 0.3, Bedrock, Vertex); answers are bare results and
errors are `google.rpc.Status` objects with the spec's HTTP status (see shared/pillars/agents/a2a/rest.py).

POST agents/{agent}/message:send · POST agents/{agent}/message:stream · GET agents/{agent}/tasks ·
GET agents/{agent}/tasks/{task} · POST agents/{agent}/tasks/{task} with task `{id}:cancel` or `{id}:subscribe`
(one path segment: Azure route templates cannot mix a parameter and a literal) · GET agents/{agent}/extendedAgentCard
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ConfigDict, Field
from starlette.responses import Response

from shared.domain.base import AppModel
from shared.errors import GatewayError
from shared.pillars.agents.a2a import rest
from shared.pillars.agents.a2a.protocol import VERSION_NOT_SUPPORTED, V1, A2AError, RpcCall
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import read_body

from .agents_api import AgentCardOut, dispatch, gateway_card

if TYPE_CHECKING:
    from shared.pillars.agents.a2a.card import CardRenderer
    from shared.pillars.agents.pillar import AgentsPillar
    from shared.pipeline.pipeline import Pipeline

HEADERS = (("A2A-Version", "A2A protocol version (the HTTP+JSON binding serves 1.0; absent means 1.0 here)."),)
LIST_QUERY = (("contextId", "Only tasks of this context."), ("status", "Only tasks in this TASK_STATE_*."),
              ("pageSize", "1-100."), ("pageToken", "From the previous page."),
              ("historyLength", "Messages of history per task (0-1000)."),
              ("statusTimestampAfter", "Only tasks updated after this RFC 3339 time."),
              ("includeArtifacts", "true|false."))


class SendMessageBody(AppModel):
    """A2A v1.0 SendMessageRequest (ProtoJSON): `message` plus optional `configuration` and `metadata`."""

    model_config = ConfigDict(extra="allow")
    message: dict[str, Any] = Field(description="The Message (messageId, role ROLE_USER, parts).")
    configuration: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class CancelBody(AppModel):
    model_config = ConfigDict(extra="allow")
    metadata: dict[str, Any] | None = None


class TaskOut(AppModel):
    """An A2A v1.0 Task (or, for SendMessage, `{task}` / `{message}`); passed through as the agent answered."""

    model_config = ConfigDict(extra="allow")


def _error(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, headers=headers, media_type="application/json")


def _checked_version(call: Call) -> None:
    header = call.req.headers.get("a2a-version")
    if header and ".".join(header.strip().split(".")[:2]) != V1:
        raise A2AError(VERSION_NOT_SUPPORTED, f"A2A-Version {header[:20]} is not served by the HTTP+JSON binding; "
                       "use 1.0, or JSON-RPC for 0.3.", data={"supported": V1})


def _framed(handler: Callable[[Call], Awaitable[Response]]) -> Callable[[Call], Awaitable[Response]]:
    """Protocol errors and governance refusals in the REST binding's own error format."""

    async def run(call: Call) -> Response:
        try:
            _checked_version(call)
            return await handler(call)
        except A2AError as exc:
            return _error(*rest.a2a_error(exc.code, exc.message, exc.data))
        except GatewayError as exc:
            return _error(*rest.gateway_error(exc), headers=dict(exc.headers) or None)

    return run


def register(api: ApiBlueprint, pillar: Callable[[], AgentsPillar], pipeline: Callable[[], Pipeline],
             cards: Callable[[], CardRenderer], guard: Guard, *, max_body_bytes: int) -> None:
    limit = max_body_bytes

    async def send(call: Call, method: str) -> Response:
        raw = await read_body(call.req, limit)
        params = rest.body_object(raw)
        return await dispatch(call, RpcCall(None, method, params, V1, "http_json"), len(raw), pipeline)

    @api.route("agents/{agent}/message:send", "POST", name="agent_rest_send", guard=guard, body=SendMessageBody,
               parse_body=False, response=TaskOut, headers=HEADERS,
               summary="A2A HTTP+JSON SendMessage: `{task}` or `{message}`.")
    @_framed
    async def message_send(call: Call) -> Response:
        return await send(call, "SendMessage")

    @api.route("agents/{agent}/message:stream", "POST", name="agent_rest_stream", guard=guard,
               body=SendMessageBody, parse_body=False, headers=HEADERS, media_type="text/event-stream",
               summary="A2A HTTP+JSON SendStreamingMessage: SSE of StreamResponse objects.")
    @_framed
    async def message_stream(call: Call) -> Response:
        return await send(call, "SendStreamingMessage")

    @api.route("agents/{agent}/tasks", "GET", name="agent_rest_list_tasks", guard=guard, response=TaskOut,
               query=LIST_QUERY, headers=HEADERS, summary="A2A HTTP+JSON ListTasks.")
    @_framed
    async def list_tasks(call: Call) -> Response:
        params = rest.list_tasks_params(call.req.query_params)
        return await dispatch(call, RpcCall(None, "ListTasks", params, V1, "http_json"), 0, pipeline)

    @api.route("agents/{agent}/tasks/{task}", "GET", name="agent_rest_get_task", guard=guard, response=TaskOut,
               query=(("historyLength", "Messages of history to include (0-1000)."),), headers=HEADERS,
               summary="A2A HTTP+JSON GetTask (and GET {id}:subscribe).")
    @_framed
    async def get_task(call: Call) -> Response:
        segment = call.path("task")
        if segment.endswith(":subscribe"):
            task_id, method = rest.task_action(segment)
            return await dispatch(call, RpcCall(None, method, {"id": task_id}, V1, "http_json"), 0, pipeline)
        params = rest.get_task_params(segment, call.req.query_params)
        return await dispatch(call, RpcCall(None, "GetTask", params, V1, "http_json"), 0, pipeline)

    @api.route("agents/{agent}/tasks/{task}", "POST", name="agent_rest_task_action", guard=guard,
               body=CancelBody, parse_body=False, response=TaskOut, headers=HEADERS,
               summary="A2A HTTP+JSON CancelTask (`{id}:cancel`) or SubscribeToTask (`{id}:subscribe`, SSE).")
    @_framed
    async def task_action(call: Call) -> Response:
        task_id, method = rest.task_action(call.path("task"))
        raw = await read_body(call.req, limit)
        params: dict[str, Any] = {"id": task_id}
        body = rest.body_object(raw)
        if method == "CancelTask" and isinstance(body.get("metadata"), dict):
            params["metadata"] = body["metadata"]
        return await dispatch(call, RpcCall(None, method, params, V1, "http_json"), len(raw), pipeline)

    @api.route("agents/{agent}/extendedAgentCard", "GET", name="agent_rest_extended_card", guard=guard,
               response=AgentCardOut, headers=HEADERS,
               summary="A2A HTTP+JSON GetExtendedAgentCard: the gateway's card for this key.")
    @_framed
    async def extended_card(call: Call) -> Response:
        body, headers = await gateway_card(call, pillar, cards, V1)
        return Response(orjson.dumps(body), headers=headers, media_type="application/json")
