"""Google OAuth2 access tokens for Vertex AI from a service-account JSON held in an UPSTREAM_SECRET_* setting.

google-auth signs the JWT assertion and exchanges it at the key's `token_uri`; that refresh is blocking, so it runs
in a thread, and the token is cached until five minutes before it expires. The token URI is checked against the
egress policy first (a key file naming an internal address must not make the gateway call it).
"""
from __future__ import annotations

import asyncio
import calendar
import json
import time
from collections.abc import Callable
from typing import Any

from ....config import Settings
from ....egress import EgressPolicy
from ....errors import DependencyUnavailable

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_MARGIN = 300.0

# setting name → a google-auth Credentials object (tests inject one; production builds it from the setting)
CredentialFactory = Callable[[str], Any]


class GoogleTokens:
    def __init__(self, settings: Settings, egress: EgressPolicy, *, factory: CredentialFactory | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings, self._egress = settings, egress
        self._factory = factory or self._from_setting
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._creds: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def _from_setting(self, setting: str) -> Any:
        from google.oauth2 import service_account  # imported on first use: cold start stays small

        raw = self._settings.upstream_secret(setting)
        if not raw:
            raise DependencyUnavailable(f"The service-account setting '{setting}' is not set (or not resolved).",
                                        code="upstream_credential_unavailable")
        try:
            info = json.loads(raw)
            return service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
        except (ValueError, KeyError) as exc:
            raise DependencyUnavailable(f"The service-account setting '{setting}' is not a service-account key.",
                                        code="upstream_credential_invalid") from exc

    async def token(self, setting: str) -> str:
        hit = self._cache.get(setting)
        if hit and hit[1] - _MARGIN > self._clock():
            return hit[0]
        async with self._lock:
            hit = self._cache.get(setting)
            if hit and hit[1] - _MARGIN > self._clock():
                return hit[0]
            creds = self._creds.get(setting) or self._factory(setting)
            self._creds[setting] = creds
            token_uri = getattr(creds, "_token_uri", None)
            if token_uri:
                await self._egress.check(str(token_uri), "service_account.token_uri")
            try:
                await asyncio.to_thread(_refresh, creds)
            except Exception as exc:  # noqa: BLE001 - google-auth raises RefreshError, TransportError...
                raise DependencyUnavailable("Cannot get a Google access token for Vertex AI.",
                                            code="upstream_credential_unavailable",
                                            details={"reason": type(exc).__name__}) from exc
            expiry = _epoch(getattr(creds, "expiry", None)) or self._clock() + 3600
            self._cache[setting] = (creds.token, expiry)
            return creds.token


def _epoch(expiry: Any) -> float | None:
    if expiry is None:
        return None
    if expiry.tzinfo is None:  # google-auth keeps naive UTC datetimes
        return float(calendar.timegm(expiry.timetuple()))
    return float(expiry.timestamp())


class _HttpxRequest:
    """google-auth's transport interface over httpx (no `requests` dependency): used only for the token exchange,
    whose URI the egress policy has just checked."""

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: float | None = None, **_: Any) -> Any:
        import httpx
        from google.auth import exceptions

        try:
            with httpx.Client(trust_env=False, timeout=timeout or 10.0) as client:
                resp = client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(str(exc)) from exc
        return _Response(resp.status_code, dict(resp.headers), resp.content)


class _Response:
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status, self.headers, self.data = status, headers, data


def _refresh(creds: Any) -> None:
    creds.refresh(_HttpxRequest())
