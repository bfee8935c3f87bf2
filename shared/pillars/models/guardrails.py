"""The guardrail step registered on the models pillar's pipeline (shared/pipeline/steps.py): `before` checks and
redacts the prompt after the model is resolved and before quota admission; `after` checks the answer — a whole
body synchronously, a stream through the sliding window. The tools and agents pillars register the same
GuardrailStep with their own segment extractors."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from shared.errors import GatewayError
from shared.guardrails.segments import apply_chat_input, apply_chat_output, chat_input, chat_output
from shared.guardrails.remote_stream import RemoteWindow
from shared.guardrails.step import GuardrailRun, GuardrailStep
from shared.guardrails.stream import GuardedSse
from shared.pipeline.exchange import Exchange, Relayed

from . import responses_guard as rg
from .responses_contracts import RESPONSES, OPERATIONS as RESPONSES_OPS
from .responses_ops import RELAY as RESPONSES_RELAY
from .responses_sse import error_event as responses_error_event
from .spec import _json_object
from .sse import error_event

# What the models spec logs as the completion instead of the upstream's text when a guardrail rewrote or cut it.
SHOWN_TEXT = "guardrails.shown_text"
# Operations whose answer carries model output: a stored response read back gets the same output checks as when
# it was created (else a redacted stream's unredacted original would come back through `GET /v1/responses/{id}`).
OUTPUT_OPS = frozenset({"chat", RESPONSES, "responses.get"})


class ModelsGuardrails:
    name = "guardrails"

    def __init__(self, step: GuardrailStep) -> None:
        self._step = step

    async def before(self, x: Exchange) -> Relayed | None:
        run = x.scratch["guardrails"] = GuardrailRun()
        try:
            await self._step.on_input(run, project_id=x.principal.project_id or "", pillar=x.pillar,
                                      resource=x.resource, key_id=x.principal.key_id, payload=x.request,
                                      **_input_shapes(x.operation))
        finally:
            x.guardrails = run.public()
        return None

    def after(self, x: Exchange, relayed: Relayed) -> Relayed:
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if run is None or not run.policies:
            return relayed  # no policy attached: nothing to do, not even a header
        if relayed.status < 300 and x.operation in OUTPUT_OPS:
            remote = bool(run.remote_output())
            if relayed.chunks is not None:
                guard = self._step.stream(run)
                if guard is None and remote:
                    guard = GuardedSse([])  # no local span check: the window only collects the text
                if guard is not None and x.operation == RESPONSES:
                    guard = rg.GuardedResponsesSse(guard.checks)
                if guard is not None:
                    window = RemoteWindow(lambda text: self._step.check_streamed(run, text)) if remote else None
                    # only what left the gateway is logged: with a remote check, what passed its batches
                    x.scratch[SHOWN_TEXT] = window.passed if window is not None else guard.released
                    relayed.chunks = self._guarded(x, run, guard, relayed.chunks, window)
            elif relayed.body is not None and run.has_output() and not remote:
                relayed.body = self._check_body(x, run, relayed.body)
        header = run.header()
        if header:
            relayed.headers["x-gateway-guardrails"] = header
        return relayed

    async def answered(self, x: Exchange, relayed: Relayed) -> Relayed:
        """A whole answer under a remote (Content Safety) output check: analysed before it leaves."""
        run: GuardrailRun | None = x.scratch.get("guardrails")
        if (run is None or relayed.body is None or relayed.status >= 300 or x.operation not in OUTPUT_OPS
                or not run.remote_output()):
            return relayed
        answer = _json_object(relayed.body)
        if answer is None:
            return relayed
        extract, apply = _output_shapes(x.operation)
        try:
            changed = await self._step.on_output_remote(run, answer, extract, apply)
        finally:
            x.guardrails = run.public()
        if changed:
            relayed.body = self._shown(x, answer)
        header = run.header()
        if header:
            relayed.headers["x-gateway-guardrails"] = header
        return relayed

    def _check_body(self, x: Exchange, run: GuardrailRun, body: bytes) -> bytes:
        answer = _json_object(body)
        if answer is None:
            return body
        extract, apply = _output_shapes(x.operation)
        try:
            changed = self._step.on_output(run, answer, extract, apply)
        finally:
            x.guardrails = run.public()
        return self._shown(x, answer) if changed else body

    @staticmethod
    def _shown(x: Exchange, answer: dict[str, Any]) -> bytes:
        """The rewritten answer; what the request log gets as the completion."""
        responses = x.operation != "chat"
        shown = answer.get("output") if responses else [c.get("message") for c in answer.get("choices") or []]
        x.scratch[SHOWN_TEXT] = [orjson.dumps(shown).decode()]
        return orjson.dumps(answer)

    async def _guarded(self, x: Exchange, run: GuardrailRun, guard: GuardedSse, chunks: AsyncIterator[bytes],
                       window: RemoteWindow | None) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for data in chunks:
                out = guard.events(data)  # held back by at most the window; a block raises
                if window is not None:  # …and until a batch has passed the remote checks
                    text, seen = "".join(guard.released[seen:]), len(guard.released)
                    out = await window.feed(out, text)
                if out:
                    yield out
            if window is not None:
                tail = await window.flush()
                if tail:
                    yield tail
        except GatewayError as exc:  # a block, or a fail-closed remote check that could not answer
            # The blocked text was held back in the window: it never reaches the client nor the log.
            x.error_code = exc.code
            if x.operation == RESPONSES:
                relay = x.scratch.get(RESPONSES_RELAY)
                yield responses_error_event(exc.code, exc.message, relay.tally.sequence if relay else 0,
                                            details=exc.details, type_=exc.type)
            else:
                yield error_event(exc.code, exc.message, details=exc.details, type_=exc.type)
        finally:
            aclose: Any = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # the spec's generator closes its upstream response
            run.verdicts += guard.verdicts()
            x.guardrails = run.public()


def _input_shapes(operation: str) -> dict[str, Any]:
    """The segment extractor and writer of an operation's request (the Responses API's by-id calls have none)."""
    if operation in RESPONSES_OPS:
        return {"extract": rg.responses_input if operation == RESPONSES else _nothing,
                "apply": rg.apply_responses_input}
    return {"extract": chat_input, "apply": apply_chat_input}


def _nothing(_payload: Any) -> list[Any]:
    return []


def _output_shapes(operation: str) -> tuple[Any, Any]:
    if operation != "chat":  # a Responses API response object (created or read back)
        return rg.responses_output, rg.apply_responses_output
    return chat_output, apply_chat_output
