"""Stateless 2025-era sessions: the `Mcp-Session-Id` *is* the session, encrypted and authenticated.

Functions instances come and go and requests land anywhere, so no instance keeps session state. The id carries
the principal/toolbox binding, the negotiated versions, the upstream session ids and an expiry, sealed with
AES-256-GCM under a key derived (HKDF-SHA256) from a gateway secret. The key id travels in clear so rotation works:
new sessions are sealed with the first secret, ids sealed with any configured secret still open. The toolbox name
is the associated data, so an id presented at another toolbox fails authentication; the principal is checked
after opening, so another caller's id is refused too.
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, ValidationError

from ....domain.base import AppModel

PREFIX = "mcpgw1"
MAX_ID_CHARS = 4096  # headers stay well under proxies' limits; larger ids are refused unread


class UpstreamSession(AppModel):
    version: str = Field(max_length=32)
    session_id: str | None = Field(default=None, max_length=512)  # none: the server is stateless


class SessionState(AppModel):
    principal: str = Field(max_length=256)   # key id (or subject) of the caller that initialized
    toolbox: str = Field(max_length=128)
    client_version: str = Field(max_length=32)
    elicitation: bool = False                # the client declared the elicitation capability
    upstreams: dict[str, UpstreamSession] = Field(default_factory=dict, max_length=64)
    expires: int                             # unix seconds


class SessionInvalid(Exception):
    """Unknown, tampered, expired or foreign session id (the transport answers 404: the client re-initializes)."""


def _derive(secret: bytes) -> tuple[str, AESGCM]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ai-gateway/mcp-session",
               info=b"aes-256-gcm").derive(secret)
    kid = hashlib.sha256(b"kid:" + key).hexdigest()[:8]
    return kid, AESGCM(key)


class SessionCodec:
    """`cache_entries`: opened ids kept decoded (bounded LRU) so a session's later requests skip the AES-GCM open
    and the model validation. Keyed by the whole sealed id — the id is the state, so a hit can only be the state
    that id authenticated to — and every hit still checks the toolbox, the caller and the expiry, exactly as a
    fresh open does. Entries are never shared between ids; a failed open is never cached."""

    def __init__(self, secrets: Sequence[bytes], *, ttl_seconds: int,
                 clock: Callable[[], float] = time.time, cache_entries: int = 4096) -> None:
        if not secrets:
            raise ValueError("at least one session secret is required")
        self._keys = [_derive(s) for s in secrets]
        self._by_kid = dict(self._keys)
        self._ttl = ttl_seconds
        self._clock = clock
        self._opened: OrderedDict[str, SessionState] = OrderedDict()
        self._max_opened = cache_entries

    def expiry(self) -> int:
        return int(self._clock()) + self._ttl

    def seal(self, state: SessionState) -> str:
        kid, aead = self._keys[0]
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, state.model_dump_json().encode(), _aad(kid, state.toolbox))
        return f"{PREFIX}.{kid}.{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"

    def open(self, session_id: str, *, toolbox: str, principal: str) -> SessionState:
        state = self._opened.get(session_id)
        if state is None:
            state = self._decode(session_id, toolbox)
            self._remember(session_id, state)
        else:
            self._opened.move_to_end(session_id)
        if state.toolbox != toolbox or state.principal != principal:
            raise SessionInvalid("session belongs to another caller or toolbox")
        if state.expires < self._clock():
            self._opened.pop(session_id, None)
            raise SessionInvalid("session expired")
        return state

    def _remember(self, session_id: str, state: SessionState) -> None:
        if self._max_opened <= 0:
            return
        self._opened[session_id] = state
        if len(self._opened) > self._max_opened:
            self._opened.popitem(last=False)

    def _decode(self, session_id: str, toolbox: str) -> SessionState:
        if len(session_id) > MAX_ID_CHARS or not session_id.isascii():
            raise SessionInvalid("session id too long")
        prefix, _, rest = session_id.partition(".")
        kid, _, blob = rest.partition(".")
        aead = self._by_kid.get(kid)
        if prefix != PREFIX or aead is None:
            raise SessionInvalid("unknown session key")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            plain = aead.decrypt(raw[:12], raw[12:], _aad(kid, toolbox))
            state = SessionState.model_validate(orjson.loads(plain))
        except (InvalidTag, ValueError, ValidationError, orjson.JSONDecodeError):
            raise SessionInvalid("session id does not authenticate") from None
        return state


def _aad(kid: str, toolbox: str) -> bytes:
    return f"{PREFIX}|{kid}|{toolbox}".encode()
