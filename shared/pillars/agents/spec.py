"""The agents pillar's spec for the governance pipeline: A2A calls (JSON-RPC, v1.0 and v0.3) to published agents.

resolve (directory: lifecycle, project; key scope; message size) → estimate (nothing to reserve up front: agents
report tokens after) → send (one upstream interface, in its own protocol version) → relay (the answer bridged to
the client's version; streams event by event) → usage (task id, state, tokens when the agent reports them).

Stateless across instances: the client sees sealed task ids (`a2a/task_ids.py`: key, project, agent and the
upstream's task id), opened on every request that names one, so GetTask/CancelTask/SubscribeToTask for a task
started on another instance reach the same upstream — and only for the key that created the task."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import orjson

from shared.domain.base import Pillar
from shared.domain.routing import RoutingPolicy
from shared.errors import GatewayError
from shared.pipeline.correlation import HEADER as CORRELATION_HEADER
from shared.pipeline.correlation import new_correlation, with_message_metadata
from shared.pipeline.exchange import Estimate, Exchange, Relayed, Usage

from . import backend_upstream
from .a2a import bridge, rest, rest_upstream
from .a2a.protocol import (INVALID_AGENT_RESPONSE, UNSUPPORTED_OPERATION, V1, A2AError, RpcCall, error,
                           result)
from .a2a.task_ids import Owner, TaskIds
from .a2a.upstream import Endpoint, endpoints, request_body, request_headers, sse_data
from .domain import Agent, AgentBackend, AgentDirectory, InvocationContext
from .limits import (InFlight, KeyPolicies, Turns, check_size, check_skill, conversation_of, effective,
                     requested_skill, within)

SENDS = frozenset({"SendMessage", "SendStreamingMessage"})
IN_FLIGHT = SENDS | {"SubscribeToTask"}  # what a concurrent-task limit counts

DEFAULT_TIMEOUT = 60.0


class Credentials(Protocol):
    async def headers(self, agent: Agent) -> dict[str, str]: ...


class AgentsSpec:
    pillar = Pillar.agents
    noun = "agent"

    def __init__(self, *, directory: AgentDirectory, http: httpx.AsyncClient, credentials: Credentials,
                 default_timeout: float = DEFAULT_TIMEOUT,
                 backend_for: Callable[[Agent], AgentBackend | None] | None = None,
                 policies: KeyPolicies | None = None, turns: Turns | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 trace: Callable[[], dict[str, str]] | None = None, task_ids: TaskIds | None = None) -> None:
        self._directory, self._http, self._credentials = directory, http, credentials
        self._timeout = default_timeout
        self._backend_for = backend_for  # Bedrock/Vertex agents → their AgentBackend; None: A2A upstream
        self._policies, self._turns = policies, turns
        self.in_flight = InFlight()
        self._clock = clock
        self._trace = trace  # telemetry on: the attempt span's W3C trace context (also in message metadata)
        self.task_ids = task_ids  # assemble_agents_pipeline passes the pillar's; None: ids pass through

    async def resolve(self, x: Exchange) -> None:
        p = x.principal
        assert p.project_id is not None
        invocation = await self._directory.resolve(p.project_id, x.resource, p)  # lifecycle and key scope
        agent = invocation.agent
        call: RpcCall = x.request
        backend = self._backend_for(agent) if self._backend_for is not None else None
        if self.task_ids is not None:  # another key's task (or no task of this gateway): TASK_NOT_FOUND, unlogged
            owner = x.scratch["owner"] = Owner(p.key_id or f"subject:{p.subject}", p.project_id, agent.id)
            call.params = self.task_ids.open_params(owner, call.method, call.params)
        x.targets = self._targets(agent, call, backend, x)  # protocol refusals (A2AError) come first: not logged
        x.routing = RoutingPolicy()
        x.entity = agent  # from here on the call is logged, governance refusals included
        x.attributes.update(agent=agent.id, caller=p.key_prefix or p.subject, method=call.method)
        x.scratch["response_headers"] = dict(invocation.headers)
        policy = await self._policies.get(p.project_id, p.key_id) if self._policies is not None else None
        key_limits = policy.limits if policy is not None else None
        limits = x.scratch["limits"] = effective(agent.spec.limits, key_limits)
        check_size(limits, x.scratch.get("body_bytes", 0))
        if call.method in SENDS:
            check_skill(agent, policy, requested_skill(call.params))
        if call.method in IN_FLIGHT:
            self._hold(x, f"{p.project_id}/{agent.id}", agent.spec.limits.concurrent_tasks)
            if key_limits is not None and p.key_id:
                self._hold(x, f"{p.project_id}/{agent.id}/key/{p.key_id}", key_limits.concurrent_tasks)
        if call.method in SENDS and limits.max_turns is not None and self._turns is not None:
            conversation = conversation_of(call.params, assign=True)
            if conversation is not None:
                x.scratch["turn"] = await self._turns.count(p.project_id, agent.id, conversation, limits.max_turns)
        if backend is not None:  # parsed after a conversation id may have been assigned
            x.scratch["message"] = backend_upstream.message_of(agent, call)

    def _targets(self, agent: Agent, call: RpcCall, backend: AgentBackend | None, x: Exchange) -> list[Endpoint]:
        if backend is not None:
            backend_upstream.message_of(agent, call)  # unsupported methods and bad messages: refused now
            x.scratch["backend"] = backend
            return [backend_upstream.endpoint(agent)]
        targets = endpoints(agent)
        if call.method == "ListTasks":  # v0.3 has no ListTasks: only 1.0 interfaces can answer it
            targets = [t for t in targets if t.version == V1]
            if not targets:
                raise A2AError(UNSUPPORTED_OPERATION, "This agent's upstream speaks A2A 0.3, which has no ListTasks.")
        return targets

    def _hold(self, x: Exchange, key: str, limit: int | None) -> None:
        if self.in_flight.take(key, limit):
            x.scratch.setdefault("held", []).append(key)

    def finished(self, x: Exchange) -> None:
        """Called by the pipeline once the call is over, on every path (refusal, error, end of stream)."""
        for key in x.scratch.pop("held", ()):
            self.in_flight.give(key)

    async def estimate(self, x: Exchange) -> Estimate:
        if x.log_payloads:
            x.payload_in = _clip(orjson.dumps(x.request.params).decode())
        return Estimate()

    def capacity(self, target: Endpoint) -> int | None:
        return None

    def _task_time(self, x: Exchange) -> float:
        limit = x.scratch.get("limits")
        return (limit.task_timeout_seconds if limit is not None else None) or self._timeout

    async def send(self, x: Exchange, target: Endpoint) -> httpx.Response:
        call: RpcCall = x.request
        agent: Agent = x.entity
        timeout = self._task_time(x)
        x.scratch["deadline"] = self._clock() + timeout
        if target.kind == "backend":
            p = x.principal
            message = x.scratch["message"]
            ctx = x.scratch["invocation"] = InvocationContext(
                project_id=p.project_id or "", principal=p, request_id=x.request_id, context_id=message.context_id,
                task_id=message.task_id, timeout_seconds=timeout)
            return await backend_upstream.call(x.scratch["backend"], agent, call, message, ctx, stream=x.stream,
                                               rid=x.request_id, clock=self._clock)
        params = call.params
        if self._trace is not None and call.method in SENDS:
            params = with_message_metadata(params, self._trace())
        headers = request_headers(target.version, x.stream) | await self._credentials.headers(agent)
        if x.correlation_id is None:
            x.correlation_id = new_correlation(x.request_id)
        headers[CORRELATION_HEADER] = x.correlation_id  # the agent sends it back on its own calls (cross-pillar)
        limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        if target.kind == "rest":
            verb, path, payload, query = rest_upstream.request(call.method, params)
            request = self._http.build_request(verb, target.url.rstrip("/") + path, headers=headers, params=query,
                                               content=orjson.dumps(payload) if payload is not None else None,
                                               timeout=limits)
        else:
            body = request_body(call.method, params, x.request_id, target.version)
            request = self._http.build_request("POST", target.url, content=body, headers=headers, timeout=limits)
        if x.stream:
            response = await self._http.send(request, stream=True)
            if target.kind != "rest":
                return response
            if "text/event-stream" in response.headers.get("content-type", ""):
                return rest_upstream.stream(response, x.request_id)
            await response.aread()
            return rest_upstream.answer(response, x.request_id)
        try:  # the task time covers the whole answer, not each read
            response = await asyncio.wait_for(self._http.send(request), timeout)
        except TimeoutError:
            raise httpx.ReadTimeout(f"the agent did not answer within its task time ({timeout:g} s)",
                                    request=request) from None
        return rest_upstream.answer(response, x.request_id) if target.kind == "rest" else response

    def relay(self, x: Exchange) -> Relayed:
        assert x.outcome is not None
        upstream, call = x.outcome.response, x.request
        headers = x.scratch["response_headers"]
        if upstream.status_code >= 300:
            x.scratch["upstream_status"] = upstream.status_code
            body = error(call.id, INVALID_AGENT_RESPONSE, f"The agent answered HTTP {upstream.status_code}.")
            return self._answer(x, headers, body, 502)
        if x.stream and "text/event-stream" in upstream.headers.get("content-type", ""):
            headers["cache-control"] = "no-cache"
            return Relayed(200, headers, chunks=self._events(x, upstream), media_type="text/event-stream")
        answer = self._translate(x, _json(upstream.content))
        if x.stream:  # a streaming call answered with one JSON object (an error, usually): one event
            return Relayed(200, headers, chunks=_one(self._event(x, answer)), media_type="text/event-stream")
        return self._answer(x, headers, answer)

    @staticmethod
    def _answer(x: Exchange, headers: dict[str, str], envelope: dict[str, Any], status: int = 200) -> Relayed:
        """One answer, framed for the binding the client called with."""
        if x.request.binding == "http_json":
            status, body = rest.frame(envelope)
            return Relayed(status, headers, body=body, media_type="application/json")
        return Relayed(status, headers, body=orjson.dumps(envelope), media_type="application/json")

    @staticmethod
    def _event(x: Exchange, envelope: dict[str, Any]) -> bytes:
        if x.request.binding == "http_json":
            return rest.event(envelope)
        return b"data: " + orjson.dumps(envelope) + b"\n\n"

    async def _events(self, x: Exchange, upstream: httpx.Response) -> AsyncIterator[bytes]:
        deadline = x.scratch.get("deadline", self._clock() + self._task_time(x))
        try:
            async for data in within(sse_data(upstream), deadline, self._clock):
                yield self._event(x, self._translate(x, _json(data)))
        except TimeoutError:
            x.error_code = "agent_task_timeout"
            yield self._event(x, error(x.request.id, INVALID_AGENT_RESPONSE,
                                       f"The task ran past its time limit ({self._task_time(x):g} s)."))
        except (httpx.HTTPError, OSError, GatewayError) as exc:
            # Never a silent truncation: the client gets an error as the last event.
            x.error_code = "upstream_stream_broken"
            yield self._event(x, error(x.request.id, INVALID_AGENT_RESPONSE,
                                       f"The agent's stream broke ({type(exc).__name__})."))
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
        owner = x.scratch.get("owner")
        if owner is not None and self.task_ids is not None:
            try:
                value = self.task_ids.seal_result(owner, call.method, value)
            except A2AError as exc:  # an id the gateway will not carry (over-long)
                x.error_code = "invalid_agent_response"
                return error(call.id, exc.code, exc.message)
            if x.scratch.get("task_id"):  # the log names both: the client's id and the agent's own
                x.scratch["upstream_task_id"] = x.scratch["task_id"]
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
        for key in ("task_id", "upstream_task_id", "context_id", "task_state", "rpc_error", "upstream_status"):
            if s.get(key) is not None:
                attrs[key] = s[key]
        ctx = s.get("invocation")
        if ctx is not None and ctx.usage:  # Bedrock reports tokens in its traces
            s["tokens"] = max(int(s.get("tokens", 0)), sum(int(v) for v in ctx.usage.values()))
            for name, value in ctx.usage.items():
                attrs[name] = int(value)
        if s.get("turn"):
            attrs["turn"] = int(s["turn"])
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
        x.scratch["task_id"] = str(task_id)[:1200]  # a sealed id is ~250 characters; an upstream's ≤ 1024
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


async def _one(event: bytes) -> AsyncIterator[bytes]:
    yield event


def _clip(text: str, limit: int = 30_000) -> str:
    return text if len(text) <= limit else text[:limit] + "…[truncated]"
