"""The guardrail step registered on the models pillar's pipeline (shared/pipeline/steps.py): `before` checks and
redacts the prompt after the model is resolved and before quota admission; `after` checks the answer — a whole
body synchronously, a stream through the sliding window. The tools and agents pillars register the same
GuardrailStep with their own segment extractors."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from shared.errors import GuardrailBlocked
from shared.guardrails.segments import apply_chat_input, apply_chat_output, chat_input, chat_output
from shared.guardrails.step import GuardrailRun, GuardrailStep
from shared.guardrails.stream import GuardedSse
from shared.pipeline.exchange import Exchange, Relayed

from . import responses_guard as rg
from .responses_contracts import RESPONSES, OPERATIONS as RESPONSES_OPS
from .responses_sse import error_event as responses_error_event
from .sse import error_event

# What the models spec logs as the completion instead of the upstream's text when a guardrail rewrote or cut it.
SHOWN_TEXT = "guardrails.shown_text"


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
        if relayed.status < 300 and x.operation in ("chat", RESPONSES):
            if relayed.chunks is not None:
                guard = self._step.stream(run)
                if guard is not None and x.operation == RESPONSES:
                    guard = rg.GuardedResponsesSse(guard.checks)
                if guard is not None:
                    x.scratch[SHOWN_TEXT] = guard.released
                    relayed.chunks = self._guarded(x, run, guard, relayed.chunks)
            elif relayed.body is not None and run.has_output():
                relayed.body = self._check_body(x, run, relayed.body)
        header = run.header()
        if header:
            relayed.headers["x-gateway-guardrails"] = header
        return relayed

    def _check_body(self, x: Exchange, run: GuardrailRun, body: bytes) -> bytes:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(answer, dict):
            return body
        responses = x.operation == RESPONSES
        extract, apply = (rg.responses_output, rg.apply_responses_output) if responses else (chat_output,
                                                                                             apply_chat_output)
        try:
            changed = self._step.on_output(run, answer, extract, apply)
        finally:
            x.guardrails = run.public()
        if not changed:
            return body
        shown = answer.get("output") if responses else [c.get("message") for c in answer.get("choices") or []]
        x.scratch[SHOWN_TEXT] = [orjson.dumps(shown).decode()]
        return orjson.dumps(answer)

    async def _guarded(self, x: Exchange, run: GuardrailRun, guard: GuardedSse,
                       chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for data in chunks:
                out = guard.events(data)  # held back by at most the window; a block raises
                if out:
                    yield out
        except GuardrailBlocked as exc:
            # The blocked text was held back in the window: it never reaches the client nor the log.
            x.error_code = exc.code
            if x.operation == RESPONSES:
                relay = x.scratch.get("responses.relay")
                yield responses_error_event(exc.code, exc.message, relay.tally.sequence if relay else 0,
                                            details=exc.details, type_="invalid_request_error")
            else:
                yield error_event(exc.code, exc.message, details=exc.details, type_="invalid_request_error")
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
