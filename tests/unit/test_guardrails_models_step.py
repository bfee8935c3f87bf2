"""The guardrail step as registered on the models pipeline, in process: before (block / redact / no policy) and
after (whole body, wrapped stream), with the verdicts on the Exchange."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.errors import GuardrailBlocked
from shared.guardrails.book import GuardrailBook
from shared.guardrails.engine import GuardrailEngine
from shared.guardrails.policy import GuardrailPolicy, PolicySpec
from shared.guardrails.step import GuardrailStep
from shared.pillars.models.guardrails import SHOWN_TEXT, ModelsGuardrails
from shared.pipeline.exchange import Exchange, Relayed
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


def make(checks: list[dict] | None) -> ModelsGuardrails:
    async def go():
        repo = Repository(MemoryDocumentStore(), GuardrailPolicy)
        if checks:
            await repo.create(GuardrailPolicy(id="pol", project_id="proj", spec=PolicySpec.model_validate(
                {"id": "pol", "attach": {"scope": "resource", "pillar": "models", "resource": "gpt"},
                 "checks": checks})))
        return ModelsGuardrails(GuardrailStep(GuardrailBook(repo, ttl=60, max_stale=60), GuardrailEngine()))
    return asyncio.run(go())


def exchange(text: str) -> Exchange:
    who = Principal(kind="virtual_key", subject="k1", project_id="proj", key_id="k1")
    return Exchange(Pillar.models, "chat", who, "rid", {"messages": [{"role": "user", "content": text}]}, {}, 0.0,
                    resource="gpt")


def answer(text: str) -> bytes:
    return orjson.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})


def test_no_policy_leaves_everything_untouched():
    step, x = make(None), exchange("mail a@b.co")
    asyncio.run(step.before(x))
    relayed = step.after(x, Relayed(200, {}, body=answer("a@b.co")))
    assert x.request["messages"][0]["content"] == "mail a@b.co" and relayed.headers == {}
    assert x.guardrails == [] and orjson.loads(relayed.body)["choices"][0]["message"]["content"] == "a@b.co"


def test_before_redacts_the_request_and_records_verdicts():
    step, x = make([{"type": "pii", "name": "pii", "stage": "both"}]), exchange("mail a@b.co")
    asyncio.run(step.before(x))
    assert x.request["messages"][0]["content"] == "mail [REDACTED:email]"
    relayed = step.after(x, Relayed(200, {}, body=answer("write to c@d.io")))
    assert orjson.loads(relayed.body)["choices"][0]["message"]["content"] == "write to [REDACTED:email]"
    assert relayed.headers["x-gateway-guardrails"] == "pii=redact"
    assert [(v["stage"], v["action"]) for v in x.guardrails] == [("input", "redact"), ("output", "redact")]
    assert "c@d.io" not in "".join(x.scratch[SHOWN_TEXT])  # what the request log gets as the completion


def test_before_block_keeps_the_verdict_on_the_exchange():
    step, x = make([{"type": "deny_list", "name": "words", "phrases": ["project x"]}]), exchange("project x")
    with pytest.raises(GuardrailBlocked):
        asyncio.run(step.before(x))
    assert [v["check"] for v in x.guardrails] == ["words"]


def test_a_blocked_stream_ends_with_an_error_event():
    step = make([{"type": "deny_list", "name": "words", "phrases": ["project x"], "stage": "output"}])
    x = exchange("hi")
    asyncio.run(step.before(x))

    async def chunks():
        for word in ["We ", "launch ", "project", " x", " soon"]:
            yield b'data: {"choices":[{"index":0,"delta":{"content":"' + word.encode() + b'"}}]}\n\n'

    relayed = step.after(x, Relayed(200, {}, chunks=chunks()))

    async def drain():
        return b"".join([c async for c in relayed.chunks])

    out = asyncio.run(drain())
    assert b"project" not in out and b'"code":"guardrail_blocked"' in out
    assert x.error_code == "guardrail_blocked" and x.guardrails[-1]["action"] == "block"
