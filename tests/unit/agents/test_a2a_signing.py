"""Signed gateway cards: verified with a standard JOSE library (joserfc) over the RFC 8785 canonical card, and with
a2a-sdk 1.x's own card verifier (which rebuilds the canonical payload from the parsed card)."""
from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet

from shared.pillars.agents.a2a.card import CardRenderer
from shared.pillars.agents.a2a.signing import CardSigner, canonical
from tests.unit.agents.test_a2a_protocol import _agent


@pytest.fixture(scope="module")
def renderer() -> CardRenderer:
    return CardRenderer(CardSigner(json.dumps(ECKey.generate_key("P-256").as_dict(private=True))))


def _verify(card: dict, jwks: dict) -> None:
    sig = card["signatures"][0]
    header = json.loads(base64.urlsafe_b64decode(sig["protected"] + "=="))
    key = KeySet.import_key_set(jwks).get_by_kid(header["kid"])
    payload = base64.urlsafe_b64encode(canonical(card)).rstrip(b"=").decode()
    jws.deserialize_compact(f"{sig['protected']}.{payload}.{sig['signature']}", key, algorithms=[header["alg"]])


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_a_signed_card_verifies_with_the_published_key_and_fails_when_changed(renderer, version):
    card = renderer.render(_agent(), "https://gw.example", version)
    header = json.loads(base64.urlsafe_b64decode(card["signatures"][0]["protected"] + "=="))
    assert header["alg"] == "ES256" and header["jku"] == "https://gw.example/agents/.well-known/jwks.json"
    jwks = renderer.signer.jwks()
    assert "d" not in jwks["keys"][0]  # never the private half
    _verify(card, jwks)
    tampered = {**card, "name": "Evil"}
    with pytest.raises(BadSignatureError):
        _verify(tampered, jwks)


def test_a2a_sdk_verifies_the_gateway_card(renderer):
    from a2a.client.card_resolver import parse_agent_card
    from a2a.utils.signing import create_signature_verifier
    from jwt import PyJWK

    card = renderer.render(_agent(), "https://gw.example", "1.0")
    public = renderer.signer.jwks()["keys"][0]
    verify = create_signature_verifier(lambda kid, jku: PyJWK(public), ["ES256"])
    verify(parse_agent_card(json.loads(json.dumps(card))))
    with pytest.raises(Exception):
        verify(parse_agent_card({**json.loads(json.dumps(card)), "description": "changed"}))


def test_only_private_keys_sign():
    public = ECKey.generate_key("P-256").as_dict(private=False)
    with pytest.raises(ValueError):
        CardSigner(json.dumps(public))
