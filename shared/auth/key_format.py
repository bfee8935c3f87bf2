"""The virtual-key secret format: self-verifying, so malformed or forged keys cost no storage round trip.

    v1:      sk-gw-<40 base62 random (≈238 bits)><12 base62 MAC (≈71 bits)>        58 characters
    legacy:  sk-gw-<43 base64url characters>  (secrets.token_urlsafe(32))             49 characters

The MAC is HMAC-SHA256 over the prefix and random part, keyed with a key *derived* from the deployment's
GATEWAY_KEY_HASH_SECRET (domain-separated, so it is never the hashing key itself). Like GitHub's token checksum,
it lets the gateway refuse a string it never issued before any lookup — unlike a CRC, a forged-but-well-formed
key fails too, because only the gateway can compute the MAC. Rotating the pepper already invalidates every issued
key's stored hash, so a MAC key with its own rotation schedule would add an operation without adding safety.

Legacy keys (issued before v1) carry no MAC: they are still accepted through the registry lookup while
ACCEPT_LEGACY_VIRTUAL_KEYS is true (the default); rotating a key gives it a v1 secret (docs/runbook.md).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from typing import Literal

from ..domain.keys import KEY_PREFIX

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LEN = 40
MAC_LEN = 12
_MAC_LABEL = b"ai-gateway/virtual-key-mac/v1"
_V1 = re.compile(rf"^{re.escape(KEY_PREFIX)}[0-9A-Za-z]{{{RANDOM_LEN + MAC_LEN}}}$")
_LEGACY = re.compile(rf"^{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]{{43}}$")

Shape = Literal["v1", "legacy", "malformed"]


def shape(secret: str) -> Shape:
    """The format a presented secret claims, judged without any secret material or storage."""
    if _V1.match(secret):
        return "v1"
    if _LEGACY.match(secret):
        return "legacy"
    return "malformed"


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


class KeyMac:
    def __init__(self, pepper: bytes) -> None:
        self._key = hmac.new(pepper, _MAC_LABEL, hashlib.sha256).digest()

    def _mac(self, body: str) -> str:
        digest = hmac.digest(self._key, body.encode(), "sha256")  # one-shot C call: no HMAC object per request
        return _base62(int.from_bytes(digest[:12], "big"), MAC_LEN)  # 62^12 < 2^96: every digit is MAC-derived

    def mint(self) -> str:
        body = KEY_PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LEN))
        return body + self._mac(body)

    def verifies(self, secret: str) -> bool:
        """True when a v1-shaped secret carries this deployment's MAC (constant-time comparison)."""
        body, mac = secret[:-MAC_LEN], secret[-MAC_LEN:]
        return hmac.compare_digest(self._mac(body), mac)
