"""Entra ID bearer tokens: signature against the tenant's JWKS (cached), issuer, audience, expiry, app roles."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from ..errors import DependencyUnavailable, Forbidden, Unauthenticated
from .principal import Principal, Role

_LEEWAY_SECONDS = 60  # clock skew between Entra and this instance
_MIN_REFRESH_SECONDS = 30  # unknown `kid` triggers a JWKS refresh at most this often (key rollover, not a DoS lever)


class EntraValidator:
    def __init__(self, *, tenant_id: str, audience: str, http: httpx.AsyncClient, issuer: str | None = None,
                 jwks_url: str | None = None, admin_role: str = "Gateway.Admin",
                 developer_role: str = "Gateway.Developer", cache_seconds: float = 3600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._audience = audience
        # v2 tokens use the login.microsoftonline.com issuer, v1 tokens the sts.windows.net one; accept both.
        self._issuers = [issuer] if issuer else [f"https://login.microsoftonline.com/{tenant_id}/v2.0",
                                                  f"https://sts.windows.net/{tenant_id}/"]
        self._jwks_url = jwks_url or f"https://login.microsoftonline.com/{tenant_id}/discovery/v2.0/keys"
        self._roles = {admin_role: Role.admin, developer_role: Role.developer}
        self._http = http
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            age = self._clock() - self._fetched_at
            if (force and age < _MIN_REFRESH_SECONDS) or (not force and age < self._cache_seconds):
                return
            try:
                resp = await self._http.get(self._jwks_url, timeout=5.0)
                resp.raise_for_status()
                keys = resp.json()["keys"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                if self._keys:  # keep validating with the keys we have; Entra rolls keys slowly
                    return
                raise DependencyUnavailable("The identity provider's signing keys cannot be fetched.",
                                            details={"dependency": "entra_jwks"}) from exc
            self._keys = {k["kid"]: RSAAlgorithm.from_jwk(json.dumps(k)) for k in keys if k.get("kty") == "RSA"}
            self._fetched_at = self._clock()

    async def _key_for(self, kid: str) -> Any:
        await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        if kid not in self._keys:
            raise Unauthenticated("The token is signed with an unknown key.", code="invalid_token")
        return self._keys[kid]

    async def validate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("The bearer token is not a valid JWT.", code="invalid_token") from None
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise Unauthenticated("The token must be RS256-signed with a key id.", code="invalid_token")
        key = await self._key_for(header["kid"])
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=self._audience, issuer=self._issuers,
                                leeway=_LEEWAY_SECONDS, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.", code="token_expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("The token is not for this API (audience).", code="invalid_audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("The token is not from this tenant (issuer).", code="invalid_issuer") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"The token is invalid: {exc}.", code="invalid_token") from None
        roles = frozenset(self._roles[r] for r in claims.get("roles", []) if r in self._roles)
        if not roles:
            raise Forbidden("The token carries none of the gateway's app roles.", code="missing_role")
        return Principal(kind="entra", subject=str(claims.get("oid") or claims.get("sub")), roles=roles,
                         name=claims.get("preferred_username") or claims.get("name"))
