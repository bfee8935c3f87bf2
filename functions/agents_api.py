"""Agents data plane (A2A): every published agent behind the gateway, as an A2A agent.

GET  /agents/{agent}/.well-known/agent-card.json   the gateway's card (v1.0 with `A2A-Version: 1.0`, else v0.3)
POST /agents/{agent}                                JSON-RPC, v1.0 and v0.3 methods, streaming as SSE
Virtual keys only; the agents pillar must be on. Protocol faults answer in JSON-RPC's own error format."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ConfigDict, Field
from starlette.responses import Response

from shared.domain.base import AppModel, Pillar
from shared.errors import GatewayError, NotFound
from shared.pillars.agents.a2a import bridge
from shared.pillars.agents.a2a.protocol import (GATEWAY_REFUSED, PUSH_NOT_SUPPORTED, PUSH_V1, PUSH_V03, STREAMING, V1,
                                                A2AError, RpcCall, V03_TO_V1, error, parse_call, result, version_of)
from shared.pipeline import Exchange
from shared.web.api import ApiBlueprint, Call, Guard
from shared.web.inputs import read_body

if TYPE_CHECKING:  # imported lazily: the pillar and its pipeline are assembled on first use
    from shared.pillars.agents.a2a.card import CardRenderer
    from shared.pillars.agents.pillar import AgentsPillar
    from shared.pipeline.pipeline import Pipeline

VERSION_HEADER = (("A2A-Version", "A2A protocol version the client speaks (1.0 or 0.3; absent means 0.3)."),)


class JsonRpcRequest(AppModel):
    """A JSON-RPC 2.0 request carrying an A2A method (v1.0: SendMessage, …; v0.3: message/send, …)."""

    model_config = ConfigDict(extra="allow")
    jsonrpc: str = Field(pattern=r"^2\.0$")
    method: str = Field(max_length=100)
    id: str | int | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class AgentCardOut(AppModel):
    model_config = ConfigDict(extra="allow")
    name: str
    description: str
    version: str


class JwksOut(AppModel):
    model_config = ConfigDict(extra="allow")
    keys: list[dict[str, Any]] = Field(max_length=8)


def _rpc_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def build(pillar: Callable[[], AgentsPillar], pipeline: Callable[[], Pipeline], cards: Callable[[], CardRenderer],
          guard: Guard, *, max_body_bytes: int, front: Callable[[], Any] | None = None) -> ApiBlueprint:
    """`pillar`, `pipeline`, `cards`: assembled on first use, inside the worker's event loop. `front` (optional):
    dispatches composite agents to their own pipeline (shared/pillars/agents/composition/front.py)."""
    api = ApiBlueprint("agents", max_body_bytes=max_body_bytes)
    limit = max_body_bytes
    runner: Callable[[], Any] = front if front is not None else pipeline  # composites answer on every binding

    @api.route("agents/{agent}/.well-known/agent-card.json", "GET", name="agent_card",
               summary="The gateway's A2A agent card for a published agent.", guard=guard, response=AgentCardOut,
               headers=VERSION_HEADER)
    async def card(call: Call):
        version = _card_version(call.req.headers.get("a2a-version"))
        body, headers = await gateway_card(call, pillar, cards, version)
        return Response(orjson.dumps(body), headers=headers, media_type="application/json")

    @api.route("agents/.well-known/jwks.json", "GET", name="agent_card_jwks", guard=None, response=JwksOut,
               summary="The public key(s) that verify the gateway's signed agent cards (JWKS).")
    async def jwks(call: Call):
        signer = cards().signer
        if signer is None:
            raise NotFound("Agent cards are not signed on this gateway (AGENT_CARD_SIGNING_JWK is not set).")
        return Response(orjson.dumps(signer.jwks()), media_type="application/json",
                        headers={"cache-control": "public, max-age=300"})

    @api.route("agents/{agent}", "POST", name="agent_jsonrpc",
               summary="A2A JSON-RPC endpoint (v1.0 and v0.3 methods; streaming methods answer with SSE).",
               guard=guard, body=JsonRpcRequest, parse_body=False, headers=VERSION_HEADER)
    async def jsonrpc(call: Call):
        p = call.principal
        assert p is not None
        raw = await read_body(call.req, limit)
        rid: Any = None
        try:
            rid, method, params = parse_call(raw)
            version = version_of(method, call.req.headers.get("a2a-version"))
            if method in PUSH_V1 or method in PUSH_V03:
                raise A2AError(PUSH_NOT_SUPPORTED, "Push notifications are not supported through the gateway.")
            v1_method = method if version == V1 else V03_TO_V1[method]
            v1_params = params if version == V1 else bridge.params_to_v1(v1_method, params)
            rpc = RpcCall(rid, v1_method, v1_params, version)
            if v1_method == "GetExtendedAgentCard":  # the gateway's card: the upstream's would leak its address
                card_body, headers = await gateway_card(call, pillar, cards, version)
                return _rpc_response(result(rid, card_body), headers=headers)
            return await dispatch(call, rpc, len(raw), runner)
        except A2AError as exc:
            return _rpc_response(error(rid if exc.rid is None else exc.rid, exc.code, exc.message, exc.data),
                                 exc.status)
        except GatewayError as exc:  # governance refusals, in JSON-RPC form, with the gateway's HTTP status
            headers = dict(exc.headers) or None
            return _rpc_response(error(rid, GATEWAY_REFUSED, exc.message, {"error": exc.to_body()["error"]}),
                                 exc.status, headers)

    from . import agents_rest_api  # the HTTP+JSON binding, on the same blueprint (it imports this module)

    agents_rest_api.register(api, pillar, runner, cards, guard, max_body_bytes=limit)
    return api


async def gateway_card(call: Call, pillar: Callable[[], AgentsPillar], cards: Callable[[], CardRenderer],
                       version: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The gateway's card of the agent in the path, as this key sees it (only the skills it may use)."""
    from shared.pillars.agents.limits import visible_skills, with_skills

    p = call.principal
    assert p is not None and p.project_id is not None
    agents = pillar()
    invocation = await agents.directory.resolve(p.project_id, call.path("agent"), p)
    policy = await agents.key_policies.get(p.project_id, p.key_id)
    agent = with_skills(invocation.agent, visible_skills(invocation.agent, policy))
    return cards().render(agent, _endpoint_base(call), version), dict(invocation.headers)


async def dispatch(call: Call, rpc: RpcCall, body_bytes: int, pipeline: Callable[[], Any]) -> Response:
    """One A2A call (JSON-RPC or HTTP+JSON alike) onto the governance pipeline (or the composites' front)."""
    p = call.principal
    assert p is not None
    x = Exchange(Pillar.agents, rpc.method, p, call.request_id, rpc, dict(call.req.headers), call.started,
                 stream=rpc.method in STREAMING, resource=call.path("agent"))
    x.scratch["body_bytes"] = body_bytes
    return await pipeline().run(x)


def _card_version(header: str | None) -> str:
    return V1 if header and header.strip().startswith("1") else "0.3"


def _endpoint_base(call: Call) -> str:
    return str(call.req.base_url).rstrip("/")
