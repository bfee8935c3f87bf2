"""Opaque ids that carry their own state, encrypted and authenticated (AES-256-GCM), like the MCP session ids of
`pillars/tools/mcp/session.py`, for other purposes (MCP task handles, A2A task ids): no instance keeps state, any
instance opens them.

Each purpose derives its own key (HKDF info) from the gateway's session secrets, so an id minted for one purpose
never opens as another. `deterministic=True` gives one id per content (a synthetic nonce, HMAC of the associated
data and the plaintext, as in SIV modes): the same task always gets the same id, whichever instance mints it,
and equal ids reveal only that the content is equal. The key id travels in clear for rotation (the first secret seals, every configured one
opens). The associated data binds an id to where it may be presented (the toolbox); the caller is inside.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
import logging
import secrets as _random
from typing import TYPE_CHECKING, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
MAX_CHARS = 4096


class SealedInvalid(Exception):
    """Unknown key, tampered, or presented where it was not minted for."""


class Sealer:
    def __init__(self, secrets: Sequence[bytes], *, purpose: str, deterministic: bool = False) -> None:
        if not secrets:
            raise ValueError("at least one secret is required")
        self._prefix = purpose
        self._keys = [self._derive(s) for s in secrets]
        self._by_kid = dict(self._keys)
        self._nonce_key = self._hkdf(secrets[0], "nonce") if deterministic else None

    # The salt predates the move out of the tools pillar: MCP task handles minted before it still open.
    def _hkdf(self, secret: bytes, use: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ai-gateway/mcp-sealed",
                    info=f"{use}|{self._prefix}".encode()).derive(secret)

    def _derive(self, secret: bytes) -> tuple[str, AESGCM]:
        key = self._hkdf(secret, "aes-256-gcm")
        return hashlib.sha256(b"kid:" + key).hexdigest()[:8], AESGCM(key)

    def seal(self, payload: BaseModel, *, bound_to: str) -> str:
        kid, aead = self._keys[0]
        plain, aad = payload.model_dump_json().encode(), self._aad(kid, bound_to)
        nonce = os.urandom(12) if self._nonce_key is None else \
            hmac.new(self._nonce_key, len(aad).to_bytes(4, "big") + aad + plain, hashlib.sha256).digest()[:12]
        sealed = aead.encrypt(nonce, plain, aad)
        return f"{self._prefix}.{kid}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"

    def open(self, token: str, model: type[M], *, bound_to: str) -> M:
        if not isinstance(token, str) or len(token) > MAX_CHARS or not token.isascii():
            raise SealedInvalid("not an id of this gateway")
        prefix, _, rest = token.partition(".")
        kid, _, blob = rest.partition(".")
        aead = self._by_kid.get(kid)
        if prefix != self._prefix or aead is None:
            raise SealedInvalid("unknown key")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            return model.model_validate(orjson.loads(aead.decrypt(raw[:12], raw[12:], self._aad(kid, bound_to))))
        except (InvalidTag, ValueError, ValidationError, orjson.JSONDecodeError):
            raise SealedInvalid("does not authenticate here") from None

    def _aad(self, kid: str, bound_to: str) -> bytes:
        return f"{self._prefix}|{kid}|{bound_to}".encode()


def session_secrets(s: "Settings") -> list[bytes]:
    """The gateway's sealing secrets (MCP_SESSION_SECRETS, comma-separated, first one seals), else one derived from
    GATEWAY_KEY_HASH_SECRET; each Sealer purpose derives its own key from them (HKDF info)."""
    if s.mcp_session_secrets:
        return [p.strip().encode() for p in s.mcp_session_secrets.get_secret_value().split(",") if p.strip()]
    if s.key_hash_secret:  # a separate key: HKDF in SessionCodec, and a distinct input here
        return [hashlib.sha256(b"mcp-session|" + s.key_hash_secret.get_secret_value().encode()).digest()]
    log.warning("MCP_SESSION_SECRETS and GATEWAY_KEY_HASH_SECRET are unset: sealed ids (MCP sessions and tasks, A2A "
                "tasks) are bound to this instance (a random key) and fail on any other")
    return [_random.token_bytes(32)]
