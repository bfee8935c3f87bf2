"""Alert notifications to webhooks: a signed JSON payload, retries with capped exponential backoff, an outcome.

Signature (verify before trusting a notification): header `x-gateway-signature: t=<unix seconds>,v1=<hex>` where
hex = HMAC-SHA256(secret, f"{t}.{raw body}"). Receivers reject stale `t` to stop replays. The secret comes only
from an `UPSTREAM_SECRET_*` app setting (a Key Vault reference in Azure). The HTTP client is the egress-guarded
one: the address actually connected to must pass the egress policy, whatever the URL's DNS says at send time.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

log = logging.getLogger("gateway.alerts")
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """Receiver side (used by the tests and documented for integrators)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or abs(now - int(parts["t"])) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(parts["t"]), body), header)


@dataclass
class Outcome:
    delivered: bool
    attempts: int
    last_error: str | None = None


async def deliver(http: httpx.AsyncClient, url: str, payload: dict[str, Any], secret: bytes | None, *,
                  attempts: int = 4, timeout: float = 5.0, backoff: float = 1.0, backoff_max: float = 30.0,
                  sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                  clock: Callable[[], float] = time.time) -> Outcome:
    body = orjson.dumps(payload)
    error: str | None = None
    for attempt in range(1, attempts + 1):
        headers = {"content-type": "application/json", "user-agent": "ai-gateway-alerts/1"}
        if secret is not None:  # re-signed per attempt: the timestamp stays fresh
            headers["x-gateway-signature"] = signature(secret, int(clock()), body)
        try:
            r = await http.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
            if 200 <= r.status_code < 300:
                return Outcome(True, attempt)
            error = f"HTTP {r.status_code}"
            if r.status_code not in RETRYABLE:
                break  # the receiver refuses this payload: retrying sends the same refusal
        except httpx.HTTPError as exc:  # timeouts, refused connections, egress refusals
            error = f"{type(exc).__name__}: {exc}"[:300]
        if attempt < attempts:
            await sleep(min(backoff * 2 ** (attempt - 1), backoff_max))
    log.warning("alert webhook %s not delivered after %d attempts: %s", url.split("?")[0], attempt, error)
    return Outcome(False, attempt, error)


class WebhookNotifier:
    """Sends a rule's notification with the rule's signing secret (read at send time: rotation needs no
    restart). A rule naming a secret that is not set is not sent unsigned: the delivery fails and says why."""

    def __init__(self, http: httpx.AsyncClient, secrets: Callable[[str], str | None], *, attempts: int = 4,
                 timeout: float = 5.0, backoff: float = 1.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._http, self._secrets = http, secrets
        self._attempts, self._timeout, self._backoff, self._sleep = attempts, timeout, backoff, sleep

    async def __call__(self, rule: Any, event: str, payload: dict[str, Any]) -> Outcome:
        name = rule.spec.webhook_secret_setting
        secret = None
        if name:
            value = self._secrets(name)
            if value is None:
                return Outcome(False, 0, f"app setting {name} is not set")
            secret = value.encode()
        return await deliver(self._http, rule.spec.webhook_url, payload, secret, attempts=self._attempts,
                             timeout=self._timeout, backoff=self._backoff, sleep=self._sleep)
