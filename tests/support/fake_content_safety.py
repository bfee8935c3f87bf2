"""A local fake of Azure AI Content Safety's REST API, written from Microsoft's reference (api-version 2023-10-01
/ 2024-09-01), served over real sockets so the real `azure-ai-contentsafety` SDK client is exercised.

- POST {endpoint}/contentsafety/text:analyze?api-version=...
  body {"text", "categories"?, "outputType"?: FourSeverityLevels|EightSeverityLevels, "blocklistNames"?, ...}
  → 200 {"blocklistsMatch": [], "categoriesAnalysis": [{"category": "Hate", "severity": 0}, ...]}
- POST {endpoint}/contentsafety/text:shieldPrompt?api-version=2024-09-01
  body {"userPrompt", "documents": [...]}
  → 200 {"userPromptAnalysis": {"attackDetected": bool}, "documentsAnalysis": [{"attackDetected": bool}, ...]}
- errors: {"error": {"code", "message"}}; 401 without the right Ocp-Apim-Subscription-Key; 400 for a missing
  api-version, missing/over-long text (10 000 characters).

Scoring is deterministic: the text contains a trigger word per category (SEVERITY_WORDS); an attack is the phrase
"ignore previous instructions". `mode` injects the failure modes: "slow" (sleeps `delay`), "429", "500".
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.fake_openai import FakeOpenAI

SEVERITY_WORDS = {"hateword": ("Hate", 6), "hurtword": ("SelfHarm", 4), "lewdword": ("Sexual", 2),
                  "fightword": ("Violence", 5)}
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")


@dataclass
class CsRequest:
    path: str
    api_version: str | None
    body: Any
    auth: str | None


def _err(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


class FakeContentSafety(FakeOpenAI):
    """Reuses FakeOpenAI's socket/uvicorn plumbing (start/stop/context manager) with its own routes."""

    def __init__(self, *, key: str) -> None:
        self.key = key
        self.mode = "ok"
        self.delay = 5.0
        self.cs_requests: list[CsRequest] = []
        self._cs_lock = threading.Lock()
        super().__init__("content-safety")

    def _build_app(self) -> Starlette:
        app = super()._build_app()  # keeps the lifespan (stop wakes sleepers); routes replaced below
        app.router.routes = [Route("/contentsafety/text:analyze", self._analyze, methods=["POST"]),
                             Route("/contentsafety/text:shieldPrompt", self._shield, methods=["POST"])]
        return app

    async def _common(self, request: Request) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        with self._cs_lock:
            self.cs_requests.append(CsRequest(request.url.path, request.query_params.get("api-version"), body,
                                              request.headers.get("ocp-apim-subscription-key")))
        if request.headers.get("ocp-apim-subscription-key") != self.key:
            return None, _err(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
        if not request.query_params.get("api-version"):
            return None, _err(404, "404", "Resource not found")
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "429":
            return None, _err(429, "TooManyRequests", "Rate limit is exceeded.", **{"Retry-After": "1"})
        if self.mode == "500":
            return None, _err(500, "InternalServerError", "An unexpected error occurred.")
        if not isinstance(body, dict):
            return None, _err(400, "InvalidRequestBody", "The request body is invalid.")
        return body, None

    async def _analyze(self, request: Request) -> JSONResponse:
        body, error = await self._common(request)
        if error is not None:
            return error
        assert body is not None
        text = body.get("text")
        if not isinstance(text, str) or not text or len(text) > 10_000:
            return _err(400, "InvalidRequestBody", "text is required and at most 10000 characters.")
        wanted = body.get("categories") or list(CATEGORIES)
        eight = body.get("outputType") == "EightSeverityLevels"
        found = {cat: sev for word, (cat, sev) in SEVERITY_WORDS.items() if word in text.lower()}
        return JSONResponse({"blocklistsMatch": [], "categoriesAnalysis": [
            {"category": c, "severity": found.get(c, 0) if eight else found.get(c, 0) // 2 * 2} for c in wanted]})

    async def _shield(self, request: Request) -> JSONResponse:
        body, error = await self._common(request)
        if error is not None:
            return error
        assert body is not None

        def attack(text: Any) -> bool:
            return isinstance(text, str) and "ignore previous instructions" in text.lower()

        return JSONResponse({"userPromptAnalysis": {"attackDetected": attack(body.get("userPrompt"))},
                             "documentsAnalysis": [{"attackDetected": attack(d)} for d in body.get("documents") or []]})
