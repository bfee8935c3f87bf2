"""Extension points of the pipeline: ordered request steps around the forward (guardrails, cache, …).

A step is registered on a pipeline (`Pipeline(..., steps=[...])`, in order). For each call, after the spec has
resolved the target and before quota admission, the pipeline runs every step's `before` in order; once an
answer exists it runs every `after` in reverse order (like middleware):

- refuse:          `before` raises a GatewayError (e.g. a guardrail block → 400/403). The call is logged.
- rewrite:         `before` replaces `x.request` (redaction); the spec estimates and sends the new request.
- short-circuit:   `before` returns a `Relayed` (a cache hit): no admission, no upstream; the later steps'
                   `before` are skipped but every `after` still runs on it. Logged with status and no target.
- wrap the answer: `after` returns a Relayed, e.g. with `chunks` wrapped by an async generator that checks
                   the output as it streams (and may end it with an error event), or stores it in a cache.
- wait on it:      an optional `async def answered(x, relayed) -> Relayed`, run after every `after` (in the same
                   reverse order), may check a whole body over the network (a remote output guardrail) and
                   raise a GatewayError (the upstream was called: usage is still settled and logged).

Steps are per pillar instance, so a step may rely on the pillar's request type; a step meant for every pillar
reads only the generic Exchange fields (pillar, resource, principal, request_id) plus its own `x.scratch` key.
"""
from __future__ import annotations

from typing import Protocol

from .exchange import Exchange, Relayed


class Step(Protocol):
    name: str  # the telemetry span and log name

    async def before(self, x: Exchange) -> Relayed | None: ...

    def after(self, x: Exchange, relayed: Relayed) -> Relayed: ...


class PassStep:
    """A base for steps that need only one of the two hooks."""

    name = "step"

    async def before(self, x: Exchange) -> Relayed | None:
        return None

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        return relayed
