"""Per-backend circuit breaker and Retry-After cool-down, kept in process (one worker's view).

closed → (too many failures in the window) → open for `trip_seconds` → half-open: exactly one probe call;
its success closes the breaker, its failure opens it again. "Too many" is either `failure_count` failures in the
window, or — once at least `min_calls` calls were seen — a failure ratio of `failure_ratio` or more.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..domain.routing import BreakerPolicy

State = Literal["closed", "open", "half_open"]


@dataclass
class _Backend:
    state: State = "closed"
    opened_at: float = 0.0
    probing: bool = False
    calls: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, failed) inside the window
    failures: int = 0  # failed entries in `calls`, kept in step so a record is O(1), not O(window)
    cool_until: float = 0.0  # upstream asked us to wait (Retry-After)


@dataclass(frozen=True)
class BreakerEvent:
    backend: str
    transition: str  # "opened" | "half_open" | "closed"


class Breakers:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._backends: dict[str, _Backend] = {}
        self.events: deque[BreakerEvent] = deque(maxlen=1000)

    def _get(self, key: str) -> _Backend:
        # get first: `setdefault(key, _Backend())` built (and dropped) a _Backend with its deque on every lookup
        b = self._backends.get(key)
        if b is None:
            b = self._backends[key] = _Backend()
        return b

    def state(self, key: str, policy: BreakerPolicy) -> State:
        b = self._get(key)
        if b.state == "open" and self._clock() - b.opened_at >= policy.trip_seconds:
            b.state, b.probing = "half_open", False
            self.events.append(BreakerEvent(key, "half_open"))
        return b.state

    def available(self, key: str, policy: BreakerPolicy) -> bool:
        """May a call go to this backend now? In half-open, only one probe at a time."""
        b = self._get(key)
        if self._clock() < b.cool_until:
            return False
        state = self.state(key, policy)
        if state == "open":
            return False
        return not (state == "half_open" and b.probing)

    def begin(self, key: str) -> bool:
        """An attempt starts; True when it is the half-open probe. Every attempt that began must end in
        `record` (a verdict on the backend) or `release` (none) — call_with_failover does so in one finally."""
        b = self._get(key)
        if b.state == "half_open" and not b.probing:
            b.probing = True
            return True
        return False

    def release(self, key: str, probe: bool) -> None:
        """An attempt ended without a verdict on the backend (our own error, a cancellation): free the probe
        slot so the next call probes, instead of leaving the breaker half-open with a probe that never ends."""
        b = self._get(key)
        if probe and b.state == "half_open":
            b.probing = False

    def wait(self, key: str, policy: BreakerPolicy) -> float:
        """Seconds until this backend may take a call again (0: now; a probe in flight counts as 1 s)."""
        b, now = self._get(key), self._clock()
        state = self.state(key, policy)
        until = b.cool_until - now
        if state == "open":
            until = max(until, b.opened_at + policy.trip_seconds - now)
        elif state == "half_open" and b.probing:
            until = max(until, 1.0)
        return max(0.0, until)

    def cool_down(self, key: str, seconds: float) -> None:
        b = self._get(key)
        b.cool_until = max(b.cool_until, self._clock() + seconds)

    def record(self, key: str, policy: BreakerPolicy, *, failed: bool) -> None:
        b, now, p = self._get(key), self._clock(), policy
        if b.state == "half_open":
            b.probing = False
            if failed:
                b.state, b.opened_at = "open", now
                self.events.append(BreakerEvent(key, "opened"))
            else:
                b.state = "closed"
                b.calls.clear()
                b.failures = 0
                self.events.append(BreakerEvent(key, "closed"))
            return
        b.calls.append((now, failed))
        b.failures += failed
        while b.calls and now - b.calls[0][0] > p.window_seconds:
            b.failures -= b.calls.popleft()[1]
        failures = b.failures
        too_many = failures >= p.failure_count or (
            len(b.calls) >= p.min_calls and failures / len(b.calls) >= p.failure_ratio)
        if failed and b.state == "closed" and too_many:
            b.state, b.opened_at = "open", now
            self.events.append(BreakerEvent(key, "opened"))
