"""Reading an upstream A2A agent card — v1.0 (`supportedInterfaces`, oneof security schemes) or v0.3 (`url` +
`preferredTransport` + `additionalInterfaces`, `type`-tagged schemes) — into the registry's terms.

Only what the gateway needs is extracted and validated (interfaces, skills, security schemes, name, description,
version); the whole card is kept (bounded) so the gateway can rewrite it. A card that is not one of the two shapes
is a 422 naming the field, never a half-registered agent.
"""
from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from ...errors import ValidationFailed
from .domain import A2AInterface, AgentSkill, UpstreamSecurityScheme

MAX_CARD_BYTES = 256 * 1024
_BINDINGS = {"JSONRPC": "jsonrpc", "HTTP+JSON": "http_json"}  # gRPC is not proxied
# v1.0 oneof member → the scheme type both versions share
_V1_SCHEMES = {"apiKeySecurityScheme": "apiKey", "httpAuthSecurityScheme": "http", "oauth2SecurityScheme": "oauth2",
               "openIdConnectSecurityScheme": "openIdConnect", "mtlsSecurityScheme": "mutualTLS"}


class CardSummary:
    def __init__(self, card: dict[str, Any], version: str, interfaces: list[A2AInterface],
                 skills: list[AgentSkill], schemes: list[UpstreamSecurityScheme]) -> None:
        self.card, self.version = card, version
        self.interfaces, self.skills, self.schemes = interfaces, skills, schemes

    @property
    def name(self) -> str:
        return str(self.card.get("name", ""))[:200]

    @property
    def description(self) -> str:
        return str(self.card.get("description", ""))[:2000]

    @property
    def agent_version(self) -> str:
        return str(self.card.get("version", ""))[:64]


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"The agent card is not valid: {field}: {message}", code="invalid_agent_card",
                            details=[{"field": f"card.{field}", "message": message}])


def parse_card_bytes(raw: bytes) -> CardSummary:
    if len(raw) > MAX_CARD_BYTES:
        raise _bad("<root>", f"larger than {MAX_CARD_BYTES} bytes")
    try:
        card = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad("<root>", "not JSON") from None
    return parse_card(card)


def parse_card(card: Any) -> CardSummary:
    if not isinstance(card, dict):
        raise _bad("<root>", "not a JSON object")
    if not isinstance(card.get("name"), str) or not card["name"].strip():
        raise _bad("name", "required")
    if "supportedInterfaces" in card:
        version, interfaces, schemes = "1.0", _v1_interfaces(card), _schemes(card, v1=True)
    elif "url" in card:
        version, interfaces, schemes = "0.3", _v03_interfaces(card), _schemes(card, v1=False)
    else:
        raise _bad("supportedInterfaces", "a v1.0 card lists supportedInterfaces; a v0.3 card has url")
    if not interfaces:
        raise _bad("supportedInterfaces", "no JSON-RPC or HTTP+JSON interface")
    return CardSummary(card, version, interfaces, _skills(card), schemes)


def _interface(url: Any, binding: Any, version: str, field: str) -> A2AInterface | None:
    b = _BINDINGS.get(str(binding).upper()) if binding is not None else "jsonrpc"
    if b is None:
        return None  # gRPC and unknown bindings: not something the gateway can proxy
    try:
        return A2AInterface(url=url, protocol_version=version, binding=b)  # type: ignore[arg-type]
    except ValidationError:
        raise _bad(field, "not an http(s) URL") from None


def _major_minor(v: Any) -> str:
    text = str(v or "1.0")
    return "0.3" if text.startswith("0.") else "1.0"


def _v1_interfaces(card: dict[str, Any]) -> list[A2AInterface]:
    items = card.get("supportedInterfaces")
    if not isinstance(items, list) or len(items) > 16:
        raise _bad("supportedInterfaces", "a list of at most 16 interfaces")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict):
            raise _bad(f"supportedInterfaces.{i}", "not an object")
        iface = _interface(it.get("url"), it.get("protocolBinding"), _major_minor(it.get("protocolVersion")),
                           f"supportedInterfaces.{i}.url")
        if iface is not None:
            out.append(iface)
    return out[:8]


def _v03_interfaces(card: dict[str, Any]) -> list[A2AInterface]:
    main = _interface(card.get("url"), card.get("preferredTransport", "JSONRPC"), "0.3", "url")
    out = [main] if main else []
    extra = card.get("additionalInterfaces") or []
    if not isinstance(extra, list) or len(extra) > 16:
        raise _bad("additionalInterfaces", "a list of at most 16 interfaces")
    for i, it in enumerate(extra):
        if not isinstance(it, dict):
            raise _bad(f"additionalInterfaces.{i}", "not an object")
        iface = _interface(it.get("url"), it.get("transport"), "0.3", f"additionalInterfaces.{i}.url")
        if iface is not None and iface not in out:
            out.append(iface)
    return out[:8]


def _skills(card: dict[str, Any]) -> list[AgentSkill]:
    items = card.get("skills") or []
    if not isinstance(items, list) or len(items) > 128:
        raise _bad("skills", "a list of at most 128 skills")
    out = []
    for i, s in enumerate(items):
        try:
            out.append(AgentSkill(id=s.get("id"), name=s.get("name"), description=s.get("description") or "",
                                  tags=s.get("tags") or [], examples=s.get("examples") or [],
                                  input_modes=s.get("inputModes") or [], output_modes=s.get("outputModes") or []))
        except (ValidationError, AttributeError) as exc:
            msg = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else "not an object"
            raise _bad(f"skills.{i}", msg) from None
    return out


def _schemes(card: dict[str, Any], *, v1: bool) -> list[UpstreamSecurityScheme]:
    items = card.get("securitySchemes") or {}
    if not isinstance(items, dict) or len(items) > 16:
        raise _bad("securitySchemes", "an object of at most 16 schemes")
    out = []
    for name, scheme in items.items():
        if not isinstance(scheme, dict):
            raise _bad(f"securitySchemes.{name}", "not an object")
        if v1:
            member = next((k for k in scheme if k in _V1_SCHEMES), None)
            kind, rest = (_V1_SCHEMES[member], scheme[member]) if member else (None, {})
        else:
            kind, rest = scheme.get("type"), {k: v for k, v in scheme.items() if k != "type"}
        try:
            out.append(UpstreamSecurityScheme(name=name, type=kind, scheme=rest if isinstance(rest, dict) else {}))
        except ValidationError:
            raise _bad(f"securitySchemes.{name}", "unknown or malformed scheme") from None
    return out
