"""Vertex AI Agent Engine: the sync's catalog (REST `reasoningEngines.list`, paged by pageToken) and the
AgentBackend (`:query` / `:streamQuery`), both over the egress-guarded httpx client with a Google access token.

An engine whose class methods declare the A2A API mode is registered with its A2A interface instead (and the
gateway calls it through the A2A backend, like any A2A agent).
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson

from ....errors import DependencyUnavailable
from ....routing.failover import UpstreamUnavailable as UpstreamError
from ..domain import A2AInterface, Agent, AgentSkill, AgentSpec, GoogleAuth, InvocationContext, SyncError, VertexRef
from ..sync.connections import VertexConnection
from ..sync.engine import CloudAgent, Listing
from ..wire import Artifact, Message, Part, StreamResponse, Task, TaskArtifactUpdateEvent, TaskStatus, \
    TaskStatusUpdateEvent

TokenSource = Callable[[], Awaitable[str]]
_MAX_PAGES = 200
A2A_MODES = {"a2a_extension"}


def _upstream_failure(resp: httpx.Response, what: str) -> UpstreamError:
    try:
        body = resp.json().get("error", {})
        message = str(body.get("message", ""))[:300]
        status = str(body.get("status", ""))
    except (ValueError, AttributeError):
        message, status = "", ""
    code = {401: "upstream_unauthenticated", 403: "upstream_forbidden", 429: "upstream_throttled"}.get(
        resp.status_code, "upstream_error")
    return UpstreamError(f"Vertex AI {what}: HTTP {resp.status_code} {status} {message}".strip(), code=code,
                         details={"status": resp.status_code})


def map_engine(engine: dict[str, Any], conn: VertexConnection) -> CloudAgent:
    name = str(engine["name"])
    spec_raw = engine.get("spec") or {}
    methods = spec_raw.get("classMethods") or []
    modes = sorted({str(m.get("api_mode", "")) for m in methods if isinstance(m, dict)} - {""})
    auth = GoogleAuth(service_account_setting=conn.service_account_setting) if conn.service_account_setting \
        else None
    interfaces = []
    if A2A_MODES & set(modes):
        interfaces = [A2AInterface(url=f"{conn.base_url}/v1beta1/{name}/a2a", protocol_version="1.0",
                                   binding="http_json")]
    display = str(engine.get("displayName") or name.rsplit("/", 1)[-1])[:200]
    spec = AgentSpec(
        name=display, description=str(engine.get("description", ""))[:2000], source="vertex",
        vertex=VertexRef(resource=name), interfaces=interfaces,
        skills=[AgentSkill(id="query", name=display, description=str(engine.get("description", ""))[:2000],
                           tags=[str(spec_raw.get("agentFramework", "custom"))[:64]])],
        **({"auth": auth} if auth else {}))
    details = {"etag": engine.get("etag", ""), "create_time": engine.get("createTime", ""),
               "labels": {str(k)[:63]: str(v)[:63] for k, v in list((engine.get("labels") or {}).items())[:32]},
               "agent_framework": str(spec_raw.get("agentFramework", "")), "api_modes": modes,
               "class_methods": sorted(str(m.get("name", "")) for m in methods if isinstance(m, dict))[:64]}
    return CloudAgent(cloud_id=name, spec=spec, upstream_status="ACTIVE",
                      upstream_updated_at=str(engine.get("updateTime", "")), details=details)


class VertexCatalog:
    cloud = "vertex"

    def __init__(self, conn: VertexConnection, http: httpx.AsyncClient, token: TokenSource) -> None:
        self._conn, self._http, self._token = conn, http, token

    async def list_agents(self) -> Listing:
        conn, out, page_token = self._conn, Listing(agents=[]), ""
        for _ in range(_MAX_PAGES):
            params = {"pageSize": str(conn.page_size)}
            if page_token:
                params["pageToken"] = page_token
            resp = await self._http.get(f"{conn.base_url}/v1/{conn.parent}/reasoningEngines", params=params,
                                        headers={"authorization": f"Bearer {await self._token()}"},
                                        timeout=conn.timeout_seconds)
            if resp.status_code != 200:
                raise _upstream_failure(resp, "reasoningEngines.list")
            body = resp.json()
            for engine in body.get("reasoningEngines") or []:
                try:
                    out.agents.append(map_engine(engine, conn))
                except (KeyError, TypeError, ValueError) as exc:  # one unreadable engine: reported, never retired
                    out.errors.append(SyncError(code="unmappable_engine", cloud_id=str(engine.get("name"))[:512]
                                                if isinstance(engine, dict) else None, message=str(exc)[:2000]))
                    out.complete = False
            page_token = body.get("nextPageToken") or ""
            if not page_token:
                return out
        out.complete = False  # more pages than we read: nothing may be retired on a cut-short listing
        return out


# ---- the AgentBackend

def _text_of(value: Any) -> str | None:
    """Text out of the common Agent Engine output shapes (a string, LangChain {"output"}, ADK events)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("output"), str):
            return value["output"]
        parts = (value.get("content") or {}).get("parts") if isinstance(value.get("content"), dict) else None
        if isinstance(parts, list):
            texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
            return "".join(texts) if texts else None
    return None


def _parts(value: Any) -> list[Part]:
    text = _text_of(value)
    return [Part(text=text)] if text is not None else [Part(data=value)]


class VertexBackend:
    """A2A SendMessage/SendStreamingMessage → Agent Engine :query / :streamQuery, and the reply back to A2A."""

    def __init__(self, http: httpx.AsyncClient, tokens: Callable[[Agent], Awaitable[str]],
                 base_url: Callable[[Agent], str]) -> None:
        self._http, self._tokens, self._base = http, tokens, base_url

    def _ids(self, message: Message, context: InvocationContext) -> tuple[str, str]:
        ctx = context.context_id or message.context_id or uuid.uuid4().hex
        return ctx, context.task_id or message.task_id or uuid.uuid4().hex

    async def _post(self, agent: Agent, verb: str, payload: dict[str, Any], context: InvocationContext,
                    stream: bool = False) -> httpx.Response:
        ref = agent.spec.vertex
        if ref is None:
            raise DependencyUnavailable(f"Agent '{agent.id}' has no Vertex resource.", code="agent_misconfigured")
        url = f"{self._base(agent)}/v1/{ref.resource}:{verb}"
        headers = {"authorization": f"Bearer {await self._tokens(agent)}", "content-type": "application/json"}
        req = self._http.build_request("POST", url, content=orjson.dumps(payload), headers=headers,
                                       params={"alt": "sse"} if stream else None, timeout=context.timeout_seconds)
        try:
            resp = await self._http.send(req, stream=stream)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Vertex AI is unreachable ({type(exc).__name__}).") from None
        if resp.status_code != 200:
            await resp.aread()
            await resp.aclose()
            raise _upstream_failure(resp, verb)
        return resp

    async def send_message(self, agent: Agent, message: Message, context: InvocationContext) -> Task:
        ctx, task_id = self._ids(message, context)
        ref = agent.spec.vertex
        method = ref.class_method if ref else "query"
        resp = await self._post(agent, "query", {"classMethod": method, "input": {"input": message.text()}},
                                context)
        output = resp.json().get("output")
        return Task(id=task_id, context_id=ctx, status=TaskStatus(state="TASK_STATE_COMPLETED"),
                    artifacts=[Artifact(artifact_id=f"{task_id}-0", parts=_parts(output))])

    async def stream_message(self, agent: Agent, message: Message,
                             context: InvocationContext) -> AsyncIterator[StreamResponse]:
        ctx, task_id = self._ids(message, context)
        user = (context.principal.subject if context.principal else "gateway")[:128]
        payload = {"classMethod": "stream_query",
                   "input": {"message": message.text(), "user_id": user, "session_id": ctx}}
        yield StreamResponse(task=Task(id=task_id, context_id=ctx, status=TaskStatus(state="TASK_STATE_WORKING")))
        resp = await self._post(agent, "streamQuery", payload, context, stream=True)
        artifact_id, n = f"{task_id}-0", 0
        try:
            async for line in resp.aiter_lines():
                line = line.removeprefix("data:").strip()
                if not line:
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # keep-alives and partial noise: the reference stream is one JSON object per line
                yield StreamResponse(artifact_update=TaskArtifactUpdateEvent(
                    task_id=task_id, context_id=ctx, append=n > 0,
                    artifact=Artifact(artifact_id=artifact_id, parts=_parts(event))))
                n += 1
        finally:
            await resp.aclose()
        yield StreamResponse(status_update=TaskStatusUpdateEvent(
            task_id=task_id, context_id=ctx, status=TaskStatus(state="TASK_STATE_COMPLETED")))
