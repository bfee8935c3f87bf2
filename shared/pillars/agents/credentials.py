"""The headers that authenticate the gateway to an A2A upstream, from the agent's `auth` (never from the client):
a static secret from an UPSTREAM_SECRET_* setting, an Entra token of the app's managed identity, or a Google
access token. AWS agents are signed by boto3 (clouds/bedrock*.py) and need no header here."""
from __future__ import annotations

import logging
from typing import Any

from ...config import Settings, is_upstream_secret_name
from ...errors import DependencyUnavailable
from .clouds.google_token import GoogleTokens
from .domain import Agent, GoogleAuth, ManagedIdentityAuth, SecretAuth

log = logging.getLogger("gateway.agents")


class AgentCredentials:
    def __init__(self, settings: Settings, entra_tokens: Any, google: GoogleTokens) -> None:
        self._settings = settings
        self._entra = entra_tokens  # shared.pillars.models.credentials.TokenCache (async token(scope))
        self._google = google

    async def headers(self, agent: Agent) -> dict[str, str]:
        auth = agent.spec.auth
        if isinstance(auth, SecretAuth):
            if not is_upstream_secret_name(auth.setting):  # a document stored before the contract refused it
                log.error("agent %s names credential setting %r outside UPSTREAM_SECRET_*: refused", agent.id,
                          auth.setting)
                raise DependencyUnavailable("The agent's credential setting is not an upstream secret.",
                                            code="upstream_credential_refused", details={"agent": agent.id})
            secret = self._settings.upstream_secret(auth.setting)
            if not secret:
                raise DependencyUnavailable(f"The agent's credential setting '{auth.setting}' is not set.",
                                            code="upstream_credential_unavailable", details={"agent": agent.id})
            return {auth.header.lower(): f"{auth.prefix}{secret}"}
        if isinstance(auth, ManagedIdentityAuth):
            return {"authorization": f"Bearer {await self._entra.token(auth.scope)}"}
        if isinstance(auth, GoogleAuth):
            return {"authorization": f"Bearer {await self._google.token(auth.service_account_setting)}"}
        return {}
