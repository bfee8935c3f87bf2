"""The agents pillar's spec for the governance pipeline: A2A calls (JSON-RPC, v1.0 and v0.3) to published agents.

resolve (directory: lifecycle, project; key scope; message size) → estimate (nothing to reserve up front: agents
report tokens after) → send (one upstream interface, in its own protocol version) → relay (the answer bridged to
the client's version; streams event by event) → usage (task id, state, tokens when the agent reports them).

Stateless across instances: task ids are the upstream's own and the agent is in the URL, so GetTask/CancelTask/
SubscribeToTask for a task started on another instance reach the same upstream."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import orjson

from shared.domain.base import Pillar
from shared.domain.routing import RoutingPolicy
from shared.errors import PayloadTooLarge
from shared.pipeline.correlation import HEADER as CORRELATION_HEADER
from shared.pipeline.correlation import new_correlation, with_message_metadata
from shared.pipeline.exchange import Estimate, Exchange, Relayed, Usage

from .a2a import bridge
from .a2a.protocol import (INVALID_AGENT_RESPONSE, UNSUPPORTED_OPERATION, V1, A2AError, RpcCall, error,
                           result)
from .a2a.upstream import Endpoint, endpoints, request_body, request_headers, sse_data
from .domain import Agent, AgentDirectory

DEFAULT_TIMEOUT = 60.0
_MESSAGE_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})


class Credentials(Protocol):
    async def headers(self, agent: Agent) -> dict[str, str]: ...


class AgentsSpec:
    pillar = Pillar.agents
    noun = "agent"

    def __init__(self, *, directory: AgentDirectory, http: httpx.AsyncClient, credentials: Credentials,
                 default_timeout: float = DEFAULT_TIMEOUT, trace: Callable[[], dict[str, str]] | None = None) -> None:
        self._directory, self._http, self._credentials = directory, http, credentials
        self._timeout = default_timeout
        self._trace = trace  # telemetry on: the attempt span's W3C trace context (also in message metadata)

    async def resolve(self, x: Exchange) -> None:
        p = x.principal
        assert p.project_id is not None
        invocation = await self._directory.resolve(p.project_id, x.resource, p)  # lifecycle and key scope
        agent = invocation.agent
        limit = agent.spec.limits.max_message_bytes
        if limit is not None and x.scratch.get("body_bytes", 0) > limit:
            raise PayloadTooLarge(f"The message is larger than the agent's limit of {limit} bytes.",
                                  details={"limit": limit})
        call: RpcCall = x.request
        targets = endpoints(agent)
        if call.method == "ListTasks":  # v0.3 has no ListTasks: only 1.0 interfaces can answer it
            targets = [t for t in targets if t.version == V1]
            if not targets:
                raise A2AError(UNSUPPORTED_OPERATION, "This agent's upstream speaks A2A 0.3, which has no ListTasks.")
        x.entity, x.targets, x.routing = agent, targets, RoutingPolicy()
        x.scratch["response_headers"] = dict(invocation.headers)

    async def estimate(self, x: Exchange) -> Estimate:
        if x.log_payloads:
            x.payload_in = _clip(orjson.dumps(x.request.params).decode())
        return Estimate()

    def capacity(self, target: Endpoint) -> int | None:
        return None

    async def send(self, x: Exchange, target: Endpoint) -> httpx.Response:
        call: RpcCall = x.request
        agent: Agent = x.entity
        params = call.params
        if self._trace is not None and call.method in _MESSAGE_METHODS:
            params = with_message_metadata(params, self._trace())
        body = request_body(call.method, params, x.request_id, target.version)
        timeout = agent.spec.limits.task_timeout_seconds or self._timeout
        headers = request_headers(target.version, x.stream) | await self._credentials.headers(agent)
        if x.correlation_id is None:
            x.correlation_id = new_correlation(x.request_id)
        headers[CORRELATION_HEADER] = x.correlation_id  # the agent sends it back on its own calls (cross-pillar)
        request = self._http.build_request(
            "POST", target.url, content=body, headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        return await self._http.send(request, stream=x.stream)

    def relay(self, x: Exchange) -> Relayed:
        assert x.outcome is not None
        upstream, call = x.outcome.response, x.request
        headers = x.scratch["response_headers"]
        if upstream.status_code >= 300:
            x.scratch["upstream_status"] = upstream.status_code
            body = error(call.id, INVALID_AGENT_RESPONSE, f"The agent answered HTTP {upstream.status_code}.")
            return Relayed(502, headers, body=orjson.dumps(body), media_type="application/json")
        if x.stream and "text/event-stream" in upstream.headers.get("content-type", ""):
            headers["cache-control"] = "no-cache"
            return Relayed(200, headers, chunks=self._events(x, upstream), media_type="text/event-stream")
        answer = self._translate(x, _json(upstream.content))
        if x.stream:  # a streaming call answered with one JSON object (an error, usually): one event
            return Relayed(200, headers, chunks=_one(answer), media_type="text/event-stream")
        return Relayed(200, headers, body=orjson.dumps(answer), media_type="application/json")

    async def _events(self, x: Exchange, upstream: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for data in sse_data(upstream):
                yield b"data: " + orjson.dumps(self._translate(x, _json(data))) + b"\n\n"
        except (httpx.HTTPError, OSError) as exc:
            # Never a silent truncation: the client gets a JSON-RPC error as the last event.
            x.error_code = "upstream_stream_broken"
            yield b"data: " + orjson.dumps(error(x.request.id, INVALID_AGENT_RESPONSE,
                                                 f"The agent's stream broke ({type(exc).__name__}).")) + b"\n\n"
        finally:
            await upstream.aclose()

    def _translate(self, x: Exchange, envelope: Any) -> dict[str, Any]:
        """One upstream JSON-RPC response → the client's version, under the client's id; notes task and usage."""
        call: RpcCall = x.request
        target: Endpoint = x.outcome.target  # type: ignore[union-attr]
        if not isinstance(envelope, dict) or ("result" not in envelope and "error" not in envelope):
            x.error_code = "invalid_agent_response"
            return error(call.id, INVALID_AGENT_RESPONSE, "The agent's answer is not a JSON-RPC response.")
        if "error" in envelope:
            err = envelope["error"] if isinstance(envelope["error"], dict) else {}
            x.scratch["rpc_error"] = err.get("code")
            return error(call.id, int(err.get("code", INVALID_AGENT_RESPONSE)), str(err.get("message", ""))[:2000],
                         err.get("data"))
        value = envelope["result"]
        if target.version != V1:
            value = bridge.result_to_v1(call.method, value)
        _note(x, value)
        if call.version != V1:
            value = bridge.result_to_v03(call.method, value)
        return result(call.id, value)

    def usage(self, x: Exchange) -> Usage:
        call: RpcCall = x.request
        s = x.scratch
        target = x.outcome.target if x.outcome is not None else None
        attrs: dict[str, int | float | bool | str] = {
            "agent": x.resource, "caller": x.principal.key_prefix or x.principal.subject, "method": call.method,
            "client_version": call.version, "upstream_version": getattr(target, "version", "")}
        for key in ("task_id", "context_id", "task_state", "rpc_error", "upstream_status"):
            if s.get(key) is not None:
                attrs[key] = s[key]
        tokens = int(s.get("tokens", 0))
        if tokens:
            attrs["total_tokens"] = tokens
        return Usage(tokens=tokens, attributes=attrs)


def _note(x: Exchange, value: Any) -> None:
    """Remember the task id/state and any token usage the agent reported (v1.0 shapes)."""
    if not isinstance(value, dict):
        return
    obj = value.get("task") or value.get("statusUpdate") or value.get("artifactUpdate") or value.get("message") \
        or value
    if not isinstance(obj, dict):
        return
    task_id = obj.get("id") if "status" in obj and "taskId" not in obj else obj.get("taskId")
    if task_id:
        x.scratch["task_id"] = str(task_id)[:200]
    if obj.get("contextId"):
        x.scratch["context_id"] = str(obj["contextId"])[:200]
    status = obj.get("status")
    if isinstance(status, dict) and isinstance(status.get("state"), str):
        x.scratch["task_state"] = status["state"][:40]
    meta = obj.get("metadata")
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if isinstance(usage, dict):
        total = usage.get("totalTokens", usage.get("total_tokens"))
        if isinstance(total, int) and 0 <= total < 10**9:
            x.scratch["tokens"] = max(int(x.scratch.get("tokens", 0)), total)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def _one(answer: dict[str, Any]) -> AsyncIterator[bytes]:
    yield b"data: " + orjson.dumps(answer) + b"\n\n"


def _clip(text: str, limit: int = 30_000) -> str:
    return text if len(text) <= limit else text[:limit] + "…[truncated]"
