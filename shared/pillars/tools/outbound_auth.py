"""Headers the gateway sends to an MCP server or API source, from the admin-registered outbound auth. The
client's own credential is never among them (the data plane builds upstream headers from an allow-list).

- upstream_secret: an `UPSTREAM_SECRET_*` app setting (a Key Vault reference in Azure), nothing else;
- oauth_client_credentials: a token from the token URL (fetched through the egress-guarded client), cached until
  shortly before it expires, one fetch at a time per client;
- managed_identity: an Entra token for the scope, through azure-identity (cached by the shared TokenCache).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ...config import Settings
from ...errors import DependencyUnavailable
from ..models.credentials import TokenCache
from .domain import ManagedIdentityAuth, NoAuth, OAuthClientCredentialsAuth, UpstreamSecretAuth

log = logging.getLogger("gateway.tools.auth")
AuthSpec = NoAuth | UpstreamSecretAuth | OAuthClientCredentialsAuth | ManagedIdentityAuth
_MAX_TOKEN_SECONDS = 86_400
_TOKEN_BODY_MAX = 64 * 1024


def _unavailable(message: str, reason: str) -> DependencyUnavailable:
    return DependencyUnavailable(message, code="upstream_credential_unavailable",
                                 details={"dependency": "upstream_credential", "reason": reason})


class OutboundAuthenticator:
    def __init__(self, settings: Settings, http: httpx.AsyncClient, *,
                 credential_factory: Callable[[str | None], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`http`: the egress-guarded upstream client. `credential_factory(client_id)`: an async azure-identity
        credential (DefaultAzureCredential, or ManagedIdentityCredential for a user-assigned identity)."""
        self._settings = settings
        self._http = http
        self._factory = credential_factory or _default_credential
        self._clock = clock
        self._entra: dict[str | None, TokenCache] = {}
        self._oauth: dict[tuple[str, ...], tuple[str, float]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def headers(self, auth: AuthSpec) -> dict[str, str]:
        if isinstance(auth, UpstreamSecretAuth):
            value = self._secret(auth.setting)
            return {auth.header: f"{auth.scheme} {value}" if auth.scheme else value}
        if isinstance(auth, OAuthClientCredentialsAuth):
            return {"authorization": f"Bearer {await self._client_credentials(auth)}"}
        if isinstance(auth, ManagedIdentityAuth):
            cache = self._entra.get(auth.client_id)
            if cache is None:
                cache = self._entra[auth.client_id] = TokenCache(lambda: self._factory(auth.client_id), self._clock)
            return {"authorization": f"Bearer {await cache.token(auth.scope)}"}
        return {}

    def _secret(self, setting: str) -> str:
        value = self._settings.upstream_secret(setting)  # refuses anything but UPSTREAM_SECRET_*
        if not value:
            raise _unavailable(f"The upstream secret setting '{setting}' is not set (or not resolved).", "unset")
        return value

    async def _client_credentials(self, auth: OAuthClientCredentialsAuth) -> str:
        key = (str(auth.token_url), auth.client_id, auth.scope or "", auth.audience or "")
        cached = self._oauth.get(key)
        if cached and cached[1] > self._clock():
            return cached[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._oauth.get(key)
            if cached and cached[1] > self._clock():
                return cached[0]
            token, lifetime = await self._fetch(auth)
            # refresh ahead: at the earlier of 5 minutes before expiry and half its lifetime
            self._oauth[key] = (token, self._clock() + lifetime - min(300.0, lifetime / 2))
            return token

    async def _fetch(self, auth: OAuthClientCredentialsAuth) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", "client_id": auth.client_id,
                "client_secret": self._secret(auth.client_secret_setting)}
        if auth.scope:
            form["scope"] = auth.scope
        if auth.audience:
            form["audience"] = auth.audience
        try:
            resp = await self._http.post(str(auth.token_url), data=form, timeout=10.0,
                                         headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unavailable("The OAuth token endpoint cannot be reached.", type(exc).__name__) from exc
        if resp.status_code != 200 or len(resp.content) > _TOKEN_BODY_MAX:
            log.warning("oauth token endpoint %s answered %s", auth.token_url, resp.status_code)
            raise _unavailable("The OAuth token endpoint refused the client credentials.",
                               f"status {resp.status_code}")
        try:
            body = resp.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise _unavailable("The OAuth token endpoint answered without an access token.", "malformed") from exc
        if not isinstance(token, str) or not token or not 0 < lifetime:
            raise _unavailable("The OAuth token endpoint answered without an access token.", "malformed")
        return token, min(lifetime, _MAX_TOKEN_SECONDS)


def _default_credential(client_id: str | None) -> Any:
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()
