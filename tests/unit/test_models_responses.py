"""The Responses API pieces in process: the response-id directory (bounded, TTL, per project), the typed-SSE relay
(usage from the terminal event, ids, split chunks), usage in the billed names, the guardrails on its shapes (input
item extraction, output redaction in JSON and across split stream deltas, a block ending the stream with the
Responses API's error event), the catalog's remaining quota read without consuming."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import orjson

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.quotas import Quota, QuotaLimits
from shared.pillars.models.responses_contracts import RESPONSES
from shared.pillars.models.responses_directory import ResponseDirectory
from shared.pillars.models.responses_guard import apply_responses_input, responses_input
from shared.pillars.models.responses_ops import as_messages, chat_usage, responses_url
from shared.pillars.models.responses_sse import ResponsesSseRelay
from shared.pillars.models.domain import Backend
from shared.pipeline.exchange import Exchange, Relayed
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from tests.support import fake_responses as rwire
from tests.unit.test_guardrails_models_step import make


def test_directory_is_bounded_expires_and_never_crosses_projects():
    now = [0.0]
    d = ResponseDirectory(max_entries=2, ttl=10, clock=lambda: now[0])
    d.record("p", "r1", "m", "a")
    d.record("p", "r2", "m", "b")
    assert d.find("p", "r1").backend == "a" and d.find("q", "r1") is None  # another project: unknown
    d.record("p", "r3", "m", "a")  # r1 was used last… r2 is the least recently recorded
    assert len(d) == 2 and d.find("p", "r2") is None and d.find("p", "r3") is not None
    now[0] = 11
    assert d.find("p", "r3") is None and len(d) == 1
    d.forget("r1")
    assert len(d) == 0


def test_relay_reads_id_deltas_and_usage_from_the_terminal_event_across_split_chunks():
    body = {"input": "hello there"}
    usage = rwire.usage(body, "a b c", cached=2, reasoning=1)
    data = b"".join(rwire.events("m", body, "a b c", usage, "resp_1"))
    relay, out = ResponsesSseRelay(), b""
    for i in range(0, len(data), 37):
        out += relay.feed(data[i:i + 37])
        if i == 0:
            assert not relay.tally.done
    assert out + relay.rest() == data  # relayed unchanged
    t = relay.tally
    assert t.done and t.response_id == "resp_1" and "".join(t.content) == "a b c" and t.sequence == len(
        data.split(b"\n\n")) - 2
    billed = chat_usage(t.usage)
    assert billed["prompt_tokens"] == usage["input_tokens"] and billed["completion_tokens"] == 3
    assert billed["prompt_tokens_details"] == {"cached_tokens": 2}
    assert chat_usage({"prompt_tokens": 1}) is None and chat_usage("junk") is None


def test_urls_and_the_estimate_text():
    def b(**kw):
        return Backend.model_validate({"id": "x", "deployment": "d", **kw})
    assert responses_url(b(kind="openai", endpoint="https://o.example/v1"), "/r1") == "https://o.example/v1/responses/r1"
    assert responses_url(b(kind="azure_openai", endpoint="https://az.example", api_version="v1")) == \
        "https://az.example/openai/v1/responses"
    assert responses_url(b(kind="azure_openai", endpoint="https://az.example", api_version="2024-10-21")) == \
        "https://az.example/openai/responses?api-version=2025-04-01-preview"
    msgs = as_messages({"instructions": "sys", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call_output", "call_id": "c", "output": "42"}]})
    assert msgs == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                    {"role": "tool", "content": "42"}]


def test_input_items_are_scanned_and_redacted_in_place():
    body = {"instructions": "mail ops@x.io", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "call a@b.co"}]},
        {"role": "user", "content": "or c@d.io"}, {"type": "function_call_output", "output": "e@f.io"}]}
    segs = responses_input(body)
    assert [s.role for s in segs] == ["system", "user", "user", "tool"]
    apply_responses_input(body, segs, ["S", "U1", "U2", "T"])
    assert body["instructions"] == "S" and body["input"][0]["content"][0]["text"] == "U1"
    assert body["input"][1]["content"] == "U2" and body["input"][2]["output"] == "T"


def _exchange(body: dict, *, stream: bool = False) -> Exchange:
    who = Principal(kind="virtual_key", subject="k1", project_id="proj", key_id="k1")
    return Exchange(Pillar.models, RESPONSES, who, "rid", body, {}, 0.0, resource="gpt", stream=stream)


def _split_events(content: str, word: str) -> list[bytes]:
    """The fake's typed stream with `word`'s delta split in two events (a match across chunks)."""
    out = []
    for event in rwire.events("gpt", {}, content, None, "resp_9"):
        obj = orjson.loads(event.split(b"data: ", 1)[1])
        if obj["type"] == "response.output_text.delta" and word in obj["delta"]:
            for part in (obj["delta"][:3], obj["delta"][3:]):
                out.append(b"event: response.output_text.delta\ndata: " + orjson.dumps({**obj, "delta": part})
                           + b"\n\n")
        else:
            out.append(event)
    return out


def _run_stream(step, x, events: list[bytes]) -> bytes:
    async def whole_events():  # what the spec's relay hands on: complete events
        for event in events:
            yield event

    async def go():
        relayed = step.after(x, Relayed(200, {}, chunks=whole_events()))
        return b"".join([piece async for piece in relayed.chunks])

    return asyncio.run(go())


def test_guardrails_redact_a_responses_answer_and_its_stream():
    step = make([{"type": "pii", "name": "pii", "stage": "both"}])
    x = _exchange({"input": [{"role": "user", "content": "mail a@b.co"}]})
    asyncio.run(step.before(x))
    assert x.request["input"][0]["content"] == "mail [REDACTED:email]"
    answer = rwire.response("gpt", {}, "write to c@d.io", None)
    relayed = step.after(x, Relayed(200, {}, body=orjson.dumps(answer)))
    assert orjson.loads(relayed.body)["output"][0]["content"][0]["text"] == "write to [REDACTED:email]"

    x = _exchange({"input": "hi"}, stream=True)
    asyncio.run(step.before(x))
    out = _run_stream(step, x, _split_events("reach me at c@d.io please", "c@d.io"))
    assert b"c@d.io" not in out and b"[REDACTED:email]" in out
    events = [orjson.loads(e.split(b"data: ", 1)[1]) for e in out.split(b"\n\n") if e.strip()]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "reach me at [REDACTED:email] please"
    done = events[-1]["response"]["output"][0]["content"][0]["text"]
    assert done == text  # the final response carries what was released, never the upstream's text


def test_a_blocked_responses_stream_ends_with_the_responses_error_event():
    step = make([{"type": "deny_list", "name": "words", "phrases": ["project x"], "stage": "output"}])
    x = _exchange({"input": "hi"}, stream=True)
    asyncio.run(step.before(x))
    out = _run_stream(step, x, _split_events("all about project x now", "project"))
    assert b"project x" not in out and b"event: error" in out and b'"code":"guardrail_blocked"' in out
    assert b"response.completed" not in out and x.error_code == "guardrail_blocked"


def test_remaining_reads_the_counters_without_consuming():
    now = datetime(2026, 1, 1, 12, 0, 5, tzinfo=timezone.utc)
    store = MemoryCounterStore()
    enforcer = QuotaEnforcer(store, clock=lambda: now)
    quota = Quota(id="model.m", project_id="p", scope="model", target="m",
                  limits=QuotaLimits(requests_per_minute=100, cost_per_month_usd=1.5))

    async def go():
        await enforcer.admit([quota], tokens=0, cost_micros=250_000)
        first = await enforcer.remaining([quota])
        return first, await enforcer.remaining([quota])

    first, second = asyncio.run(go())
    assert first == second  # reading takes nothing
    by_metric = {m: (limit, left, resets) for _, m, limit, left, resets in first}
    assert by_metric["requests_per_minute"][:2] == (100, 99) and by_metric["requests_per_minute"][2] == 55
    assert by_metric["cost_per_month_usd"][:2] == (1_500_000, 1_250_000)


def test_remote_window_holds_events_until_each_batch_passed_with_overlap():
    from shared.errors import GuardrailBlocked
    from shared.guardrails.remote_stream import RemoteWindow

    seen: list[str] = []

    async def check(text: str) -> None:
        seen.append(text)
        if "hateword" in text:
            raise GuardrailBlocked("no")

    async def go():
        w = RemoteWindow(check, batch=10, overlap=4)
        outs = [await w.feed(b"e1", "12345"), await w.feed(b"e2", "67890"), await w.feed(b"e3", "ab")]
        outs.append(await w.flush())
        return w, outs

    w, outs = asyncio.run(go())
    assert outs == [b"", b"e1e2", b"", b"e3"] and seen == ["1234567890", "7890ab"] and w.passed == ["1234567890", "ab"]

    async def blocked():
        w = RemoteWindow(check, batch=10, overlap=4)
        first = await w.feed(b"a", "calm words hate")  # passes; "hate" stays as overlap
        try:
            await w.feed(b"b", "word and more text")
        except GuardrailBlocked:
            return first, w.passed
        raise AssertionError("not blocked")

    first, passed = asyncio.run(blocked())
    assert first == b"a" and passed == ["calm words hate"]  # the blocked batch's events and text never left


def test_a_stored_response_read_back_gets_the_output_checks_again():
    step = make([{"type": "pii", "name": "pii", "stage": "output"}])
    who = Principal(kind="virtual_key", subject="k1", project_id="proj", key_id="k1")
    x = Exchange(Pillar.models, "responses.get", who, "rid", {"response_id": "resp_1", "query": {}}, {}, 0.0,
                 resource="gpt")
    asyncio.run(step.before(x))
    stored = rwire.response("gpt", {}, "write to c@d.io", None)  # the upstream keeps what it generated
    relayed = step.after(x, Relayed(200, {}, body=orjson.dumps(stored)))
    assert orjson.loads(relayed.body)["output"][0]["content"][0]["text"] == "write to [REDACTED:email]"
