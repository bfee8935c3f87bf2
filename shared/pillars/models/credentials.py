"""Credentials for model backends: an api-key from an app setting (a Key Vault reference in Azure), or keyless
Entra ID tokens for Azure OpenAI, cached and refreshed before they expire."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from shared.config import UPSTREAM_SECRET_PREFIX, Settings, is_upstream_secret_name
from .domain import Backend
from shared.errors import DependencyUnavailable

log = logging.getLogger(__name__)

COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
_REFRESH_MARGIN_SECONDS = 300  # refresh five minutes before expiry, so no call carries a token about to lapse


class TokenCache:
    def __init__(self, credential_factory: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self._factory = credential_factory
        self._credential: Any = None
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def token(self, scope: str) -> str:
        cached = self._tokens.get(scope)
        if cached and cached[1] - _REFRESH_MARGIN_SECONDS > self._clock():
            return cached[0]
        async with self._lock:
            cached = self._tokens.get(scope)
            if cached and cached[1] - _REFRESH_MARGIN_SECONDS > self._clock():
                return cached[0]
            if self._credential is None:
                self._credential = self._factory()
            try:
                access = await self._credential.get_token(scope)
            except Exception as exc:  # noqa: BLE001 - azure-identity raises many types; all mean "no token"
                if cached and cached[1] > self._clock():
                    return cached[0]  # still valid, just inside the margin: use it
                raise DependencyUnavailable("Cannot get an Entra ID token for the model backend.",
                                            details={"dependency": "entra_token", "reason": type(exc).__name__},
                                            code="upstream_credential_unavailable") from exc
            self._tokens[scope] = (access.token, float(access.expires_on))
            return access.token


class UpstreamCredentials:
    def __init__(self, settings: Settings, tokens: TokenCache) -> None:
        self._settings = settings
        self._tokens = tokens

    async def headers(self, backend: Backend) -> dict[str, str]:
        if backend.api_key_setting:
            if not is_upstream_secret_name(backend.api_key_setting):
                # The contract refuses such names; this guards documents stored before it did (or built without
                # validation): the gateway's own secrets must never leave as an upstream credential.
                log.error("backend %s names key setting %r outside %s*: refused", backend.id,
                          backend.api_key_setting, UPSTREAM_SECRET_PREFIX)
                raise DependencyUnavailable(
                    f"The backend's key setting is not an upstream secret ({UPSTREAM_SECRET_PREFIX}*); "
                    "an admin must rename it.", code="upstream_credential_refused", details={"backend": backend.id})
            key = self._settings.upstream_secret(backend.api_key_setting)
            if not key:
                raise DependencyUnavailable(
                    f"The backend's key setting '{backend.api_key_setting}' is not set (or not resolved).",
                    code="upstream_credential_unavailable", details={"backend": backend.id})
            return {"api-key": key} if backend.kind == "azure_openai" else {"authorization": f"Bearer {key}"}
        if backend.kind == "azure_openai":
            return {"authorization": f"Bearer {await self._tokens.token(COGNITIVE_SCOPE)}"}
        return {}  # an OpenAI-compatible endpoint without auth (e.g. a local model server)
