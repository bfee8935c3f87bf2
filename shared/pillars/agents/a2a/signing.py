"""Signed agent cards (A2A `AgentCard.signatures`): a detached JWS over the card's canonical form — RFC 8785 (JCS)
of the card without `signatures`, with empty strings/lists/objects left out the way a2a-sdk's verifier builds the
same payload — so clients can check a card came from the gateway. The public key is published as a JWKS and named
in the protected header (`kid`, `jku`)."""
from __future__ import annotations

import base64
import json
from typing import Any

import rfc8785
from joserfc import jws
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

_ALGS = {"EC": "ES256", "RSA": "RS256", "OKP": "EdDSA"}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: c for k, v in value.items() if (c := _clean(v)) is not None}
        return out or None
    if isinstance(value, list):
        items = [c for v in value if (c := _clean(v)) is not None]
        return items or None
    if isinstance(value, str) and not value:
        return None
    return value


def canonical(card: dict[str, Any]) -> bytes:
    body = {k: v for k, v in card.items() if k != "signatures"}
    return rfc8785.dumps(_clean(body) or {})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class CardSigner:
    def __init__(self, private_jwk: str, jku: str | None = None) -> None:
        data = json.loads(private_jwk)
        key = JWKRegistry.import_key(data)
        if not isinstance(key, (ECKey, RSAKey, OKPKey)) or not key.is_private:
            raise ValueError("AGENT_CARD_SIGNING_JWK must be a private EC, RSA or OKP key")
        self._key, self.alg = key, data.get("alg") or _ALGS[key.key_type]
        self.kid = str(data.get("kid") or key.thumbprint())
        self._jku = jku

    def sign(self, card: dict[str, Any], jku: str | None = None) -> dict[str, str]:
        header: dict[str, Any] = {"alg": self.alg, "kid": self.kid, "typ": "JOSE"}
        if jku or self._jku:
            header["jku"] = jku or self._jku
        compact = jws.serialize_compact(header, canonical(card), self._key, algorithms=[self.alg])
        protected, _, signature = compact.split(".")
        return {"protected": protected, "signature": signature}

    def jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "alg": self.alg, "use": "sig"}]}
