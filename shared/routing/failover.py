"""Choosing targets and failing over between them — model backends, MCP server replicas, agent endpoints: anything
with an id, a priority and a weight (`Target`).

Order: priority groups (lower first); inside a group a weighted random order (each backend at most once per
pass). A backend is skipped while its breaker is open, while it is cooling down after an upstream Retry-After,
or while its half-open probe is in flight. Retries happen on connect errors, timeouts and configured statuses,
within a total attempt budget and a total time budget. Streaming responses count as successful once the
upstream answered 2xx headers: after that nothing is retried (the proxy ends a broken stream with an error
event instead).
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import httpx

from ..domain.routing import RoutingPolicy
from ..errors import CapacityExhausted, GatewayError, NoBackendAvailable, UpstreamTimeout, UpstreamUnavailable
from .breaker import Breakers


class Target(Protocol):
    """One upstream a call can be sent to. Pydantic models with these fields (the models `Backend`) fit as-is."""

    @property
    def id(self) -> str: ...

    @property
    def priority(self) -> int: ...  # lower is tried first

    @property
    def weight(self) -> int: ...  # ≥ 1, relative share inside a priority group


T = TypeVar("T", bound=Target)


# Retry-After on a 503 no_backend_available never asks a client to wait longer than this (a longer trip or
# cool-down just answers again with what is left).
MAX_RETRY_AFTER = 300


@dataclass
class Attempt:
    target: str
    status: int | None
    error: str | None
    ms: float


@dataclass(slots=True)
class Outcome(Generic[T]):
    response: httpx.Response  # for streams: open, unread
    target: T
    attempts: list[Attempt] = field(default_factory=list)
    upstream_ms: float = 0.0

    @property
    def retries(self) -> int:
        return len(self.attempts) - 1


def plan(backends: Sequence[T], rng: random.Random) -> list[T]:
    """Priority groups in order; weighted random order inside each (Efraimidis–Spirakis keys)."""
    if len(backends) == 1:  # most MCP servers and many models have one target: nothing to order, no draw
        return [backends[0]]
    keyed = [(b.priority, -(rng.random() ** (1.0 / b.weight)), b) for b in backends]
    return [b for *_, b in sorted(keyed, key=lambda t: (t[0], t[1]))]


def retry_after_seconds(response: httpx.Response) -> float | None:
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if name in response.headers:
            try:
                return float(response.headers[name]) / 1000
            except ValueError:
                pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


async def call_with_failover(backends: Sequence[T], send: Callable[[T], Awaitable[httpx.Response]],
                             *, breakers: Breakers, key: Callable[[T], str], routing: RoutingPolicy,
                             rng: random.Random, clock: Callable[[], float] = time.monotonic,
                             admit: Callable[[T], Awaitable[bool]] | None = None,
                             noun: str = "model backend") -> Outcome[T]:
    """`admit` reserves a target's own capacity (a backend's TPM); a target it refuses is skipped without an
    attempt. `noun` names the targets in error messages ("model backend", "MCP server", "agent")."""
    policy, bp = routing.retry, routing.breaker
    full: set[str] = set()
    order = plan(backends, rng)
    attempts: list[Attempt] = []
    last_response: httpx.Response | None = None
    last_error: GatewayError | None = None
    deadline = clock() + policy.total_timeout_seconds
    retry_status = set(policy.retry_on_status)
    i = 0
    while len(attempts) < policy.max_attempts and clock() < deadline:
        candidates = [b for b in order if b.id not in full and breakers.available(key(b), bp)]
        if not candidates:
            break
        backend = candidates[i % len(candidates)]
        i += 1
        if admit is not None and not await admit(backend):
            full.add(backend.id)
            continue
        k = key(backend)
        probe = breakers.begin(k)
        settled = False  # every way out of this attempt settles the breaker (a verdict, or a release): see finally
        started = clock()
        try:
            try:
                response = await send(backend)
            except httpx.TimeoutException as exc:
                breakers.record(k, bp, failed=True)
                settled = True
                attempts.append(Attempt(backend.id, None, "timeout", (clock() - started) * 1000))
                last_error = UpstreamTimeout(f"The {noun} did not answer in time ({type(exc).__name__}).")
                continue
            except (httpx.TransportError, OSError) as exc:
                breakers.record(k, bp, failed=True)
                settled = True
                attempts.append(Attempt(backend.id, None, "connect_error", (clock() - started) * 1000))
                last_error = UpstreamUnavailable(f"The {noun} could not be reached ({type(exc).__name__}).")
                continue
            ms = (clock() - started) * 1000
            attempts.append(Attempt(backend.id, response.status_code, None, ms))
            if response.status_code < 400 or response.status_code not in retry_status:
                # success, or a client error the next backend would repeat (400, 401, 404 …): no retry
                breakers.record(k, bp, failed=response.status_code >= 500)
                settled = True
                return Outcome(response, backend, attempts, ms)
            breakers.record(k, bp, failed=True)
            settled = True
            if response.status_code in (429, 503):
                wait = retry_after_seconds(response)
                breakers.cool_down(k, min(policy.max_cool_down_seconds,
                                          wait if wait is not None else policy.default_cool_down_seconds))
            if not response.is_closed:
                await _discard(response)
            last_response = response
        finally:
            if not settled:
                # Anything else — the body cannot be serialised, credentials are unavailable, the call was
                # cancelled — says nothing about the backend's health, but must not leave its probe in flight.
                breakers.release(k, probe)
    if last_response is not None:
        # every attempt failed with an upstream answer: give the client the last one (status, body, Retry-After)
        return Outcome(last_response, next(b for b in order if b.id == attempts[-1].target), attempts,
                       attempts[-1].ms)
    if last_error is not None:
        last_error.details = {"attempts": [a.__dict__ for a in attempts]}
        raise last_error
    if full:
        raise CapacityExhausted(f"Every {noun} is at its tokens-per-minute capacity.",
                                headers={"retry-after": str(max(1, 60 - int(time.time()) % 60))})
    wait = min((breakers.wait(key(b), bp) for b in order), default=1.0)
    raise NoBackendAvailable(f"Every {noun} is cooling down or its circuit breaker is open.",
                             headers={"retry-after": str(retry_after_header(wait))},
                             details={"retry_after_seconds": retry_after_header(wait)})


def retry_after_header(seconds: float) -> int:
    """A Retry-After a client can act on: the real wait rounded up, at least 1 s, at most MAX_RETRY_AFTER."""
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER
    return max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))


async def _discard(response: httpx.Response) -> None:
    """Drain and close a response we will not use; a failure here is only a lost connection to the pool."""
    try:
        await response.aread()
    except httpx.HTTPError:
        pass  # the attempt is already recorded; the connection is closed below either way
    finally:
        await response.aclose()
