"""The gateway's agent card for a published agent: its interfaces point at the gateway and its security scheme
says how to authenticate to the gateway (a virtual key as a bearer token), never how the gateway reaches the
upstream (the upstream's URL, schemes and credentials stay private).

Every agent is offered over JSON-RPC (1.0 and 0.3) and HTTP+JSON (1.0), whatever its upstream speaks.
Two shapes from one agent: v1.0 (`supportedInterfaces`, wrapped security schemes, `securityRequirements`) for
clients that send `A2A-Version: 1.0`, and v0.3 (`url`, `preferredTransport`, `protocolVersion`, typed security
schemes, `security`) otherwise — the spec treats a request without the header as 0.3. The v0.3 shape also lists
`supportedInterfaces`, so a 1.x client that fetched it without the header still finds the 1.0 interface."""
from __future__ import annotations

from typing import Any

from ..domain import Agent

SCHEME = "gatewayVirtualKey"
_DESCRIPTION = "A virtual key issued by the gateway, sent as `Authorization: Bearer <key>`."


def endpoint(base_url: str, agent_id: str) -> str:
    return f"{base_url.rstrip('/')}/agents/{agent_id}"


def _upstream(agent: Agent, name: str, default: Any) -> Any:
    card = agent.card or {}
    value = card.get(name)
    return value if value is not None else default


def _skills(agent: Agent) -> list[dict[str, Any]]:
    return [{"id": s.id, "name": s.name, "description": s.description or s.name, "tags": list(s.tags),
             **({"examples": list(s.examples)} if s.examples else {}),
             **({"inputModes": list(s.input_modes)} if s.input_modes else {}),
             **({"outputModes": list(s.output_modes)} if s.output_modes else {})} for s in agent.spec.skills]


def card_v1(agent: Agent, base_url: str) -> dict[str, Any]:
    url = endpoint(base_url, agent.id)
    caps = _upstream(agent, "capabilities", {})
    return {
        "name": agent.spec.name,
        "description": agent.spec.description or agent.spec.name,
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
                                {"url": url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}],
        "version": agent.spec.version or "1.0.0",
        "capabilities": {"streaming": bool(caps.get("streaming", True)), "pushNotifications": False},
        "securitySchemes": {SCHEME: {"httpAuthSecurityScheme": {"scheme": "Bearer", "description": _DESCRIPTION}}},
        "securityRequirements": [{"schemes": {SCHEME: {"list": []}}}],
        "defaultInputModes": list(_upstream(agent, "defaultInputModes", ["text/plain"])),
        "defaultOutputModes": list(_upstream(agent, "defaultOutputModes", ["text/plain"])),
        "skills": _skills(agent),
    }


def card_v03(agent: Agent, base_url: str) -> dict[str, Any]:
    v1 = card_v1(agent, base_url)
    return {
        "protocolVersion": "0.3.0",
        "name": v1["name"],
        "description": v1["description"],
        "url": endpoint(base_url, agent.id),
        "preferredTransport": "JSONRPC",
        "supportedInterfaces": v1["supportedInterfaces"],
        "version": v1["version"],
        "capabilities": v1["capabilities"],
        "securitySchemes": {SCHEME: {"type": "http", "scheme": "bearer", "description": _DESCRIPTION}},
        "security": [{SCHEME: []}],
        "defaultInputModes": v1["defaultInputModes"],
        "defaultOutputModes": v1["defaultOutputModes"],
        "skills": v1["skills"],
    }


def gateway_card(agent: Agent, base_url: str, version: str) -> dict[str, Any]:
    return card_v1(agent, base_url) if version == "1.0" else card_v03(agent, base_url)


class CardRenderer:
    """Renders the gateway's cards; signs them when a signing key is configured (see signing.py)."""

    def __init__(self, signer: "Any | None" = None) -> None:
        self.signer = signer

    @classmethod
    def from_settings(cls, settings: Any) -> "CardRenderer":
        from .signing import CardSigner

        jwk = settings.agent_card_signing_jwk
        return cls(CardSigner(jwk.get_secret_value()) if jwk is not None else None)

    def render(self, agent: Agent, base_url: str, version: str) -> dict[str, Any]:
        card = gateway_card(agent, base_url, version)
        if self.signer is not None:
            card["signatures"] = [self.signer.sign(card, jku=jwks_url(base_url))]
        return card


def jwks_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}{JWKS_PATH}"


JWKS_PATH = "/agents/.well-known/jwks.json"
