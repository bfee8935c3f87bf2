"""Issuing and resolving virtual keys. Lookups go through the fail-static cache, so the hot path does not touch
Cosmos per request; a revocation takes effect on every instance within the cache TTL (see docs/runbook.md).
A presented secret is first checked locally (shape, then MAC — see key_format.py): only a string this deployment
issued can cost a registry lookup or a cache entry."""
from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

from ..cache import FailStaticCache
from ..domain.base import utcnow
from ..domain.keys import KEY_PREFIX, KeyCreate, PreviousSecret, VirtualKey
from ..errors import Conflict, DependencyUnavailable, Unauthenticated
from ..storage.repository import Repository
from .key_format import KeyMac, shape
from .principal import Principal, key_principal, looks_like_jwt


_MAX_KNOWN = 10_000


class KeyService:
    def __init__(self, keys: Repository[VirtualKey], *, pepper: bytes | None, ttl: float, max_stale: float,
                 accept_legacy: bool = True) -> None:
        self._keys = keys
        self._pepper = pepper
        self._mac = KeyMac(pepper) if pepper else None
        self._accept_legacy = accept_legacy
        self._cache: FailStaticCache[str, VirtualKey | None] = FailStaticCache(
            self._lookup, ttl=ttl, max_stale=max_stale)
        # Secrets of active keys this instance authenticated → their lookup digest. The digest (an HMAC) and the
        # shape/MAC check are pure functions of the secret, but on a request's cold caches they cost ~30 µs
        # (OpenSSL's HMAC, the regex) where this dict costs one lookup. Validity is still the key cache's: state,
        # expiry and revocation are checked on every call. Bounded; docs/security.md ("Virtual keys in memory").
        self._known: dict[str, str] = {}
        # Digest → (the cached key object it was last accepted against, until when that acceptance holds, the
        # principal built from it). While the key cache hands back that very object (a refresh or invalidation
        # replaces it), `accepts`, `state` and the principal are functions of the clock alone: one comparison
        # instead of re-deriving them and re-validating a Principal per call (~30 % of the key check hot, more
        # on a request's cold caches). Each call still gets its own copy (the guard sets `project` on it).
        self._accepted: dict[str, tuple[VirtualKey, datetime | None, Principal]] = {}

    def _require_pepper(self) -> bytes:
        if not self._pepper:
            raise DependencyUnavailable("GATEWAY_KEY_HASH_SECRET is not set (or its Key Vault reference is not "
                                        "resolved); virtual keys cannot be issued or checked.",
                                        details={"dependency": "key_hash_secret", "reason": "not_configured"})
        return self._pepper

    def hash(self, secret: str) -> str:
        return hmac.digest(self._require_pepper(), secret.encode(), "sha256").hex()  # one-shot, as hexdigest()

    def _key_mac(self) -> KeyMac:
        self._require_pepper()
        assert self._mac is not None
        return self._mac

    async def _lookup(self, digest: str) -> VirtualKey | None:
        page = await self._keys.list(None, limit=1, contains={"lookup": digest})
        return page.items[0] if page.items else None

    def _new_secret(self) -> str:
        return self._key_mac().mint()

    async def issue(self, project_id: str, spec: KeyCreate) -> tuple[VirtualKey, str]:
        secret = self._new_secret()
        digest = self.hash(secret)
        key = VirtualKey(id=uuid.uuid4().hex[:16], project_id=project_id, name=spec.name,
                         prefix=secret[: len(KEY_PREFIX) + 6], hash=digest, lookup=[digest],
                         expires_at=spec.expires_at, models=spec.models, tools=spec.tools, agents=spec.agents,
                         metadata=spec.metadata,
                         secret_format="v1")
        return await self._keys.create(key), secret

    async def rotate(self, project_id: str, key_id: str, overlap_seconds: int) -> tuple[VirtualKey, str]:
        """A new secret for the same key (same id, scopes, quotas); the old one keeps working for the overlap."""
        secret = self._new_secret()
        digest = self.hash(secret)

        def apply(k: VirtualKey) -> None:
            now = utcnow()
            if k.state(now) != "active":
                raise Conflict(f"A {k.state(now)} key cannot be rotated.", code="key_not_active")
            keep = [p for p in k.previous if p.valid_until > now]
            if overlap_seconds > 0:
                keep.append(PreviousSecret(hash=k.hash, valid_until=now + timedelta(seconds=overlap_seconds)))
            k.previous = keep
            k.hash, k.prefix, k.secret_format = digest, secret[: len(KEY_PREFIX) + 6], "v1"
            k.lookup = [digest, *(p.hash for p in keep)]

        old = await self._keys.get(project_id, key_id)
        key = await self._keys.update(project_id, key_id, apply)
        self._cache.invalidate(old.hash)  # this instance stops trusting its cached copy at once
        return key, secret

    def forget(self, key: VirtualKey) -> None:
        digests = set(key.lookup or [key.hash])
        for digest in digests:
            self._cache.invalidate(digest)
            self._accepted.pop(digest, None)
        for secret in [s for s, d in self._known.items() if d in digests]:
            del self._known[secret]

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("A virtual key is required (Authorization: Bearer sk-gw-… or api-key header).",
                                  code="missing_credentials")
        if not secret.startswith(KEY_PREFIX):
            # Admin keys and Entra tokens are control-plane credentials; they never open the data plane.
            kind = "An Entra token" if looks_like_jwt(secret) else "This credential"
            raise Unauthenticated(f"{kind} is not a virtual key; the data plane accepts only virtual keys.",
                                  code="invalid_api_key")
        digest = self._known.get(secret) or self._check_locally(secret)
        key = await self._cache.get(digest)
        now = utcnow()
        seen = self._accepted.get(digest)
        if seen is not None and seen[0] is key and (seen[1] is None or now < seen[1]):
            self._remember(secret, digest)
            return seen[2].model_copy()
        return self._accept(secret, digest, key, now)

    def _remember(self, secret: str, digest: str) -> None:
        if secret not in self._known:
            if len(self._known) >= _MAX_KNOWN:
                self._known.clear()
            self._known[secret] = digest

    def _accept(self, secret: str, digest: str, key: VirtualKey | None, now: datetime) -> Principal:
        """The full check of a key found for `digest` (first use, a new cached object, or a deadline passed)."""
        if key is None or not key.accepts(digest, now):
            raise Unauthenticated("The virtual key is not valid.", code="invalid_api_key")
        state = key.state(now)
        if state != "active":
            raise Unauthenticated(f"The virtual key is {state}.", code=f"key_{state}")
        self._remember(secret, digest)
        # (pydantic's model_construct is slower than this validation: measured, issue 13)
        principal = key_principal(key)
        if len(self._accepted) >= _MAX_KNOWN:
            self._accepted.clear()
        self._accepted[digest] = (key, _valid_until(key, digest), principal)
        return principal.model_copy()

    def _check_locally(self, secret: str) -> str:
        """Refuse, at zero storage cost and without a cache entry, every string this deployment did not issue;
        return the secret's lookup digest."""
        kind = shape(secret)
        if kind == "malformed" or (kind == "v1" and not self._key_mac().verifies(secret)):
            raise Unauthenticated("The virtual key is not valid.", code="invalid_api_key")
        if kind == "legacy" and not self._accept_legacy:
            raise Unauthenticated("This virtual key uses the retired format; ask an admin to rotate it.",
                                  code="invalid_api_key", details={"reason": "legacy_key_format"})
        return self.hash(secret)


def _valid_until(key: VirtualKey, digest: str) -> datetime | None:
    """The first instant at which `key` may stop accepting `digest` (its revocation, its expiry, the end of the
    previous secret's overlap); None: not before the key itself changes."""
    ends = [t for t in (key.revoked_at, key.expires_at) if t is not None]
    if digest != key.hash:
        ends += [p.valid_until for p in key.previous if p.hash == digest]
    return min(ends) if ends else None
