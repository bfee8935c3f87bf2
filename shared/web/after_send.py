"""Work a request hands over to run once its response has been sent (issue 9: the caller's added latency).

The pipeline's release-and-log (settle or release the quota holds, the request-log row, the call's span and
metrics) needs nothing from the response bytes, yet ran before them were written: ~110 µs of a `tools/call`'s
critical path at 100 calls/s on the local host (py-spy), more with telemetry on. Each request served by an
`ApiBlueprint` operation opens an `AfterSend` scope; `defer(fn)` adds `fn` to it and the blueprint returns the
handler's response as a `SendThenRun` — same class family, status, headers, body — whose `__call__` writes it
and then, in a `finally`, runs what was deferred.

Invariants:
- exactly once: after the send (completed, failed or cancelled), or when the response is dropped without ever
  being sent (its `__del__`, so a host that discards it cannot leak a hold); never twice;
- in order of `defer`; one failing callback is logged and does not stop the others;
- outside a scope (unit tests, timers, queue functions, a stream's own generator) `defer` answers False and the
  caller runs the work itself, at once;
- only whole-body responses wait (a `Response` whose class sends `self.body` as `Response` does): for a streaming or
  file response the scope's work runs before it is returned (a stream's own release-and-log runs in its generator's
  `finally`, pipeline.py)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger("gateway.http")
Deferred = list[Callable[[], None]]
_SCOPE: ContextVar[Deferred | None] = ContextVar("gateway_after_send", default=None)


def defer(fn: Callable[[], None]) -> bool:
    """Run `fn` after the current request's response is sent. False: no such request here, run it yourself."""
    pending = _SCOPE.get()
    if pending is None:
        return False
    pending.append(fn)
    return True


def _run(pending: Deferred) -> None:
    while pending:
        fn = pending.pop(0)
        try:
            fn()
        except Exception:  # noqa: BLE001 - logged; the other callbacks (another call's release) still run
            log.exception("deferred after-send work failed")


class SendThenRun(Response):
    """A whole-body response that runs the request's deferred work once it has been written."""

    _pending: Deferred

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            _run(self._pending)  # empties the list: the collector finds nothing left to run

    def __del__(self) -> None:
        # Dropped without ever being sent: the work runs now (a `__del__`, not a `weakref.finalize`: that costs a
        # registry entry and a weak reference per request, ~10 µs of every call's after-send work).
        pending = self.__dict__.get("_pending")
        if pending:
            _run(pending)


class AfterSend:
    """One request's scope: `open()` before the handler, `close(response)` with whatever it returned."""

    __slots__ = ("_pending", "_token")

    def __init__(self) -> None:
        self._pending: Deferred = []
        self._token: Token[Deferred | None] | None = None

    def open(self) -> None:
        self._token = _SCOPE.set(self._pending)

    def close(self, response: Any) -> Any:
        """The response to hand to the host: `response` itself when nothing was deferred, or a stream (its work
        run now), else a `SendThenRun` carrying the deferred work. Also ends the scope for this context."""
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None
        if not self._pending:
            return response
        if not isinstance(response, Response) or type(response).__call__ is not Response.__call__:
            _run(self._pending)  # a stream, a file, anything that sends itself differently: its work runs now
            return response
        out = SendThenRun.__new__(SendThenRun)
        out.__dict__.update(response.__dict__)  # status, rendered body, raw headers, background: not re-rendered
        out._pending = self._pending
        return out

    def abandon(self) -> None:
        """The handler raised past the blueprint (it should not): run the work now, end the scope."""
        if self._token is not None:
            _SCOPE.reset(self._token)
            self._token = None
        _run(self._pending)
