"""What a pillar writes to run on the pipeline: one small spec (cf. Envoy AI Gateway's endpoint spec)."""
from __future__ import annotations

from typing import Any, Protocol

import httpx

from ..domain.base import Pillar
from .exchange import Estimate, Exchange, Relayed, Usage


class PillarSpec(Protocol):
    pillar: Pillar
    noun: str  # names a target in error messages: "model backend", "MCP server", "agent"

    async def resolve(self, x: Exchange) -> None:
        """Find the resource the call names and check it may be called: set `x.resource`, `x.entity`,
        `x.targets`, `x.routing`. Raise ResourceNotFound (missing, or lifecycle not serving — see
        shared.domain.lifecycle.serves) and ResourceNotAllowed (`x.principal.may_use(pillar, name)` is false)."""

    async def estimate(self, x: Exchange) -> Estimate:
        """Before admission: what the call will take on quotas. May prepare the request for sending (and set
        `x.payload_in` when `x.log_payloads`)."""

    def capacity(self, target: Any) -> int | None:
        """A target's own tokens-per-minute capacity, shared across instances; None: unlimited."""

    async def send(self, x: Exchange, target: Any) -> httpx.Response:
        """One attempt at one target. Streams come back open and unread."""

    def relay(self, x: Exchange) -> Relayed:
        """Turn `x.outcome.response` into what the client gets (pass-through body or a chunk stream). A stream's
        generator closes the upstream response in its own `finally`."""

    def usage(self, x: Exchange) -> Usage:
        """After the relay (for streams: after the last chunk) — what the call really used; may set
        `x.payload_out`. Called only when an upstream answered."""

    # Optional: `def finished(self, x: Exchange) -> None` — called once per call on every path (refusal, error,
    # end of stream) before usage is settled; a spec releases there what it held itself (in-flight slots).
