"""Azure AI Content Safety as a remote guardrail check: harm categories with severity thresholds (`text:analyze`,
through the `azure-ai-contentsafety` SDK) and Prompt Shields (`text:shieldPrompt`, which SDK 1.0.0 lacks: sent
through the same SDK client's `send_request`, so auth, pipeline and timeouts are shared).

Keyless by default (the app's managed identity via azure-identity; the identity needs the "Cognitive Services
User" role on the resource), or a key from an `UPSTREAM_SECRET_*` app setting. Every call is bounded by the check's
`timeout_seconds` and never retried (the policy's fail mode decides what an error means, not a retry loop).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from ..config import Settings
from ..egress import EgressDenied, EgressPolicy
from ..errors import GuardrailUnavailable
from .checks import Finding
from .egress_aiohttp import check_literal, guarded_session
from .policy import ContentSafetyCheck
from .segments import Segment

if TYPE_CHECKING:  # the SDK is imported on first use: a gateway without Content Safety checks never loads it
    from azure.ai.contentsafety.aio import ContentSafetyClient

log = logging.getLogger("gateway.guardrails")
SHIELD_API_VERSION = "2024-09-01"
MAX_TEXT = 10_000  # the service's limit per text:analyze call (Unicode code points)
MAX_CHUNKS = 4  # so at most 40 000 characters are analysed per call; the rest is reported as not analysed
MAX_DOCUMENTS = 5


class ContentSafety:
    def __init__(self, settings: Settings, credential: Callable[[], Any], egress: EgressPolicy) -> None:
        self._settings = settings
        self._egress = egress
        self._credential = credential  # the app's (async) DefaultAzureCredential, made on first keyless use
        self._clients: dict[tuple[str, str | None], ContentSafetyClient] = {}

    def _client(self, check: ContentSafetyCheck) -> "ContentSafetyClient":
        from azure.ai.contentsafety.aio import ContentSafetyClient
        from azure.core.credentials import AzureKeyCredential
        from azure.core.pipeline.transport import AioHttpTransport

        endpoint = str(check.endpoint).rstrip("/")
        key = (endpoint, check.api_key_setting)
        if key not in self._clients:
            if check.api_key_setting:
                secret = self._settings.upstream_secret(check.api_key_setting)
                if not secret:
                    raise GuardrailUnavailable(f"The app setting {check.api_key_setting} is not set.")
                cred: Any = AzureKeyCredential(secret)
            else:
                cred = self._credential()
            transport = AioHttpTransport(session=guarded_session(self._egress), session_owner=True)
            self._clients[key] = ContentSafetyClient(endpoint, cred, retry_total=0, transport=transport)
        return self._clients[key]

    async def __call__(self, check: ContentSafetyCheck, segments: list[Segment]) -> Finding | None:
        try:
            await check_literal(self._egress, str(check.endpoint))
            client = self._client(check)
            return await asyncio.wait_for(self._analyse(client, check, segments), check.timeout_seconds)
        except TimeoutError:
            raise GuardrailUnavailable(f"Azure AI Content Safety did not answer within {check.timeout_seconds} s.")
        except EgressDenied as exc:
            log.warning("egress refused: %s", exc)
            raise GuardrailUnavailable(f"The egress policy refuses the Content Safety endpoint ({exc.reason}).")
        except AzureError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.warning("content safety check %s failed: %s status=%s", check.name, type(exc).__name__, status)
            raise GuardrailUnavailable(f"Azure AI Content Safety failed ({status or type(exc).__name__}).") from None

    async def _analyse(self, client: "ContentSafetyClient", check: ContentSafetyCheck,
                       segments: list[Segment]) -> Finding | None:
        text = "\n".join(s.text for s in segments)
        chunks = [text[i:i + MAX_TEXT] for i in range(0, min(len(text), MAX_TEXT * MAX_CHUNKS), MAX_TEXT)]
        jobs = [self._harm(client, check, c) for c in chunks if check.thresholds]
        shield = check.prompt_shields and any(s.role != "assistant" for s in segments)
        if shield:
            jobs.append(self._shield(client, segments))
        results = await asyncio.gather(*jobs)
        detail: dict[str, Any] = {}
        harms: dict[str, int] = {}
        for r in results[:len(results) - shield]:
            for cat, sev in r.items():
                harms[cat] = max(harms.get(cat, 0), sev)
        fired = {c: s for c, s in harms.items() if s >= check.thresholds.get(c, 8)}  # type: ignore[call-overload]
        if fired:
            detail["categories"] = fired
        attacks = results[-1] if shield else []
        if attacks:
            detail["attacks"] = attacks
        if len(text) > MAX_TEXT * MAX_CHUNKS:
            detail["not_analysed_chars"] = len(text) - MAX_TEXT * MAX_CHUNKS
        return Finding(len(fired) + len(attacks), detail=detail) if fired or attacks else None

    @staticmethod
    async def _harm(client: "ContentSafetyClient", check: ContentSafetyCheck, text: str) -> dict[str, int]:
        from azure.ai.contentsafety.models import AnalyzeTextOptions

        result = await client.analyze_text(AnalyzeTextOptions(
            text=text, categories=list(check.thresholds), output_type="EightSeverityLevels"))
        return {str(a.category): int(a.severity or 0) for a in result.categories_analysis or []}

    @staticmethod
    async def _shield(client: "ContentSafetyClient", segments: list[Segment]) -> list[str]:
        from azure.core.rest import HttpRequest

        user = "\n".join(s.text for s in segments if s.role in ("user", "system"))[:MAX_TEXT]
        docs = [s.text[:MAX_TEXT] for s in segments if s.role == "tool"][:MAX_DOCUMENTS]
        request = HttpRequest("POST", "/text:shieldPrompt", params={"api-version": SHIELD_API_VERSION},
                              json={"userPrompt": user, "documents": docs})
        response = await client.send_request(request)
        response.raise_for_status()
        body = response.json()
        attacks = ["user_prompt"] if (body.get("userPromptAnalysis") or {}).get("attackDetected") else []
        attacks += [f"document_{i}" for i, d in enumerate(body.get("documentsAnalysis") or [])
                    if isinstance(d, dict) and d.get("attackDetected")]
        return attacks

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
