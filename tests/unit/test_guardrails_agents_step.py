"""The guardrail step on the agents (A2A) pipeline, in process: input text parts (block / redact), whole answers
in either protocol version, and streams (sliding window per artifact, error event on block)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.errors import GuardrailBlocked
from shared.guardrails.book import GuardrailBook
from shared.guardrails.engine import GuardrailEngine
from shared.guardrails.policy import GuardrailPolicy, PolicySpec
from shared.guardrails.step import GuardrailStep
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.guardrails import AgentsGuardrails, text_parts
from shared.pipeline.exchange import Exchange, Relayed
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


def make(checks: list[dict], resource: str = "echo") -> AgentsGuardrails:
    async def go():
        repo = Repository(MemoryDocumentStore(), GuardrailPolicy)
        await repo.create(GuardrailPolicy(id="pol", project_id="proj", spec=PolicySpec.model_validate(
            {"id": "pol", "attach": {"scope": "resource", "pillar": "agents", "resource": resource},
             "checks": checks})))
        return AgentsGuardrails(GuardrailStep(GuardrailBook(repo, ttl=60, max_stale=60), GuardrailEngine()))
    return asyncio.run(go())


def exchange(text: str, method: str = "SendMessage", binding: str = "jsonrpc") -> Exchange:
    who = Principal(kind="virtual_key", subject="k1", project_id="proj", key_id="k1")
    params = {"message": {"messageId": "m1", "role": "ROLE_USER",
                          "parts": [{"text": text}, {"url": "https://x.test/a@b.co"}]}}
    return Exchange(Pillar.agents, method, who, "rid", RpcCall(7, method, params, "1.0", binding), {}, 0.0,
                    stream=method == "SendStreamingMessage", resource="echo")


def task(user: str, answer: str) -> dict:
    return {"jsonrpc": "2.0", "id": 7, "result": {"task": {
        "id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_COMPLETED"},
        "history": [{"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": user}]}],
        "artifacts": [{"artifactId": "a1", "parts": [{"text": answer}], "metadata": {"note": "x@y.io"}}]}}}


PII = [{"type": "pii", "name": "pii", "stage": "both"}]
WORDS_OUT = [{"type": "deny_list", "name": "words", "phrases": ["project x"], "stage": "output"}]


def test_input_text_parts_are_redacted_before_the_upstream():
    step, x = make(PII), exchange("mail a@b.co")
    asyncio.run(step.before(x))
    parts = x.request.params["message"]["parts"]
    assert parts[0]["text"] == "mail [REDACTED:email]" and parts[1] == {"url": "https://x.test/a@b.co"}
    assert [(v["check"], v["stage"], v["action"]) for v in x.guardrails] == [("pii", "input", "redact")]


def test_input_block_raises_with_the_verdict_on_the_exchange():
    step = make([{"type": "deny_list", "name": "words", "phrases": ["project x"]}])
    x = exchange("tell me about project x")
    with pytest.raises(GuardrailBlocked) as err:
        asyncio.run(step.before(x))
    assert err.value.code == "guardrail_blocked" and err.value.details["check"] == "words"
    assert [v["check"] for v in x.guardrails] == ["words"]


def test_a_policy_on_another_agent_does_not_apply():
    step, x = make(PII, resource="other"), exchange("mail a@b.co")
    asyncio.run(step.before(x))
    assert x.request.params["message"]["parts"][0]["text"] == "mail a@b.co" and x.guardrails == []


def test_a_cloud_backends_parsed_message_is_read_again_after_redaction():
    step, x = make(PII), exchange("mail a@b.co")
    x.entity = SimpleNamespace(spec=SimpleNamespace(source="bedrock"))
    x.scratch["message"] = "parsed before the step"
    asyncio.run(step.before(x))
    assert x.scratch["message"].text() == "mail [REDACTED:email]"


def test_whole_answer_output_redacts_agent_text_not_the_callers_history():
    step, x = make(PII), exchange("hello")
    asyncio.run(step.before(x))
    relayed = step.after(x, Relayed(200, {}, body=orjson.dumps(task("me@own.io", "write to c@d.io"))))
    out = orjson.loads(relayed.body)["result"]["task"]
    assert out["artifacts"][0]["parts"][0]["text"] == "write to [REDACTED:email]"
    assert out["history"][0]["parts"][0]["text"] == "me@own.io"  # the caller's own message, echoed: not output
    assert out["artifacts"][0]["metadata"] == {"note": "x@y.io"}  # metadata is not text output
    assert relayed.headers["x-gateway-guardrails"] == "pii=redact"
    assert [(v["stage"], v["action"]) for v in x.guardrails] == [("output", "redact")]


def test_v03_shapes_and_the_rest_binding_are_scanned_too():
    v03 = {"kind": "task", "status": {"state": "completed", "message": {"role": "agent", "kind": "message",
           "parts": [{"kind": "text", "text": "a"}]}}, "artifacts": [{"parts": [{"kind": "text", "text": "b"}]}]}
    assert [p["text"] for p in text_parts(v03, [])] == ["a", "b"]


def test_whole_answer_output_block_raises():
    step, x = make(WORDS_OUT), exchange("hi")
    asyncio.run(step.before(x))
    with pytest.raises(GuardrailBlocked):
        step.after(x, Relayed(200, {}, body=orjson.dumps(task("hi", "about project x"))))
    assert [(v["check"], v["stage"]) for v in x.guardrails] == [("words", "output")]


def artifact_event(text: str, *, append: bool = True, last: bool = False) -> bytes:
    update = {"taskId": "t1", "contextId": "c1", "artifact": {"artifactId": "a1", "parts": [{"text": text}]},
              "append": append, "lastChunk": last}
    return b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": 7, "result": {"artifactUpdate": update}}) + b"\n\n"


FINAL = b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": 7, "result": {"statusUpdate": {
    "taskId": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_COMPLETED"}}}}) + b"\n\n"


def run_stream(step: AgentsGuardrails, x: Exchange, events: list[bytes]) -> list[bytes]:
    closed = []

    async def chunks():
        try:
            for e in events:
                yield e
        finally:
            closed.append(True)

    async def go():
        relayed = step.after(x, Relayed(200, {}, chunks=chunks()))
        return [c async for c in relayed.chunks]
    out = asyncio.run(go())
    assert closed == [True]  # the upstream stream is always closed
    return out


def texts_of(out: list[bytes]) -> str:
    events = [e for c in out for e in c.split(b"\n\n") if e.startswith(b"data: ")]
    return "".join(p["text"] for e in events for p in text_parts(orjson.loads(e[6:]), []))


def test_a_match_split_across_artifact_chunks_ends_the_stream_with_an_error_event():
    step, x = make(WORDS_OUT), exchange("hi", "SendStreamingMessage")
    asyncio.run(step.before(x))
    out = run_stream(step, x, [artifact_event("We launch ", append=False), artifact_event("project"),
                               artifact_event(" x soon"), FINAL])
    assert b"project" not in b"".join(out)  # held back in the window, never released
    err = orjson.loads(out[-1][6:])["error"]
    assert err["code"] == -32000 and err["data"]["error"]["code"] == "guardrail_blocked"
    assert x.error_code == "guardrail_blocked"
    assert [(v["check"], v["action"]) for v in x.guardrails] == [("words", "block")]


def test_a_blocked_stream_on_the_rest_binding_ends_with_its_error_event():
    step, x = make(WORDS_OUT), exchange("hi", "SendStreamingMessage", binding="http_json")
    asyncio.run(step.before(x))
    update = {"artifactUpdate": {"taskId": "t1", "contextId": "c1",
                                 "artifact": {"artifactId": "a1", "parts": [{"text": "project x"}]}}}
    out = run_stream(step, x, [b"data: " + orjson.dumps(update) + b"\n\n"])
    assert out[-1].startswith(b"event: error\ndata: ") and b"guardrail_blocked" in out[-1]


def test_stream_redaction_across_chunks_releases_the_rest_before_the_final_status():
    step, x = make(PII), exchange("hi", "SendStreamingMessage")
    asyncio.run(step.before(x))
    out = run_stream(step, x, [artifact_event("mail to c@", append=False), artifact_event("d.io please"), FINAL])
    assert texts_of(out) == "mail to [REDACTED:email] please"
    assert out[-1].endswith(FINAL) and out[-1] != FINAL  # the held-back remainder went out before the task ended
    assert [(v["check"], v["stage"], v["action"]) for v in x.guardrails] == [("pii", "output", "redact")]


def test_whole_messages_in_a_stream_are_checked_whole():
    step, x = make(PII), exchange("hi", "SendStreamingMessage")
    asyncio.run(step.before(x))
    status = {"jsonrpc": "2.0", "id": 7, "result": {"statusUpdate": {"taskId": "t1", "contextId": "c1", "status": {
        "state": "TASK_STATE_WORKING", "message": {"messageId": "m2", "role": "ROLE_AGENT",
                                                   "parts": [{"text": "ask c@d.io"}]}}}}}
    out = run_stream(step, x, [b"data: " + orjson.dumps(status) + b"\n\n", FINAL])
    assert texts_of(out) == "ask [REDACTED:email]"


def test_a_task_read_back_gets_the_output_checks_without_an_input_scan():
    step = make(PII)
    x = exchange("ignored")
    x.operation = x.request.method = "GetTask"
    x.request.params = {"id": "t1"}
    asyncio.run(step.before(x))
    assert x.guardrails == []
    relayed = step.after(x, Relayed(200, {}, body=orjson.dumps(task("hi", "write to c@d.io"))))
    assert b"c@d.io" not in relayed.body and b"[REDACTED:email]" in relayed.body


def test_the_rest_binding_body_is_the_bare_result_and_is_checked_too():
    step, x = make(PII), exchange("hi", binding="http_json")
    asyncio.run(step.before(x))
    body = orjson.dumps(task("hi", "write to c@d.io")["result"])
    assert orjson.loads(step.after(x, Relayed(200, {}, body=body)).body)["task"]["artifacts"][0]["parts"][0][
        "text"] == "write to [REDACTED:email]"


def test_an_upstream_error_answer_is_left_alone():
    step, x = make(PII), exchange("hi")
    asyncio.run(step.before(x))
    body = b'{"jsonrpc":"2.0","id":7,"error":{"code":-32006,"message":"a@b.co"}}'
    assert step.after(x, Relayed(502, {}, body=body)).body == body


def test_v03_stream_events_get_the_same_window_per_artifact():
    step, x = make(PII), exchange("hi", "SendStreamingMessage")
    x.request.version = "0.3"
    asyncio.run(step.before(x))

    def v03(result: dict) -> bytes:
        return b"data: " + orjson.dumps({"jsonrpc": "2.0", "id": 7, "result": result}) + b"\n\n"

    def chunk(text: str, append: bool) -> bytes:
        return v03({"kind": "artifact-update", "taskId": "t1", "contextId": "c1", "append": append,
                    "artifact": {"artifactId": "a1", "parts": [{"kind": "text", "text": text}]}})
    final = v03({"kind": "status-update", "taskId": "t1", "contextId": "c1", "final": True,
                 "status": {"state": "completed"}})
    out = run_stream(step, x, [chunk("mail to c@", False), chunk("d.io please", True), final])
    assert texts_of(out) == "mail to [REDACTED:email] please" and out[-1].endswith(final)
    events = [orjson.loads(e[6:]) for c in out for e in c.split(b"\n\n") if e.startswith(b"data: ")]
    assert all(p.get("kind") == "text" for e in events[:-1] for p in e["result"]["artifact"]["parts"])


def test_a_remote_output_check_holds_a_stream_in_analysed_batches_and_can_end_it():
    from shared.guardrails.checks import Finding

    analysed: list[str] = []

    async def remote(check, segments):  # the engine's seam for Content Safety (its adapter is tested on its own)
        analysed.append(segments[0].text)
        return Finding(1) if "harm" in segments[0].text else None

    async def go(text: str) -> tuple[Exchange, list[bytes]]:
        repo = Repository(MemoryDocumentStore(), GuardrailPolicy)
        await repo.create(GuardrailPolicy(id="cs", project_id="proj", spec=PolicySpec.model_validate(
            {"id": "cs", "attach": {"scope": "project"}, "checks": [
                {"type": "content_safety", "name": "harm", "endpoint": "https://cs.test", "stage": "output"}]})))
        step = AgentsGuardrails(GuardrailStep(GuardrailBook(repo, ttl=60, max_stale=60), GuardrailEngine(remote)))
        x = exchange("hi", "SendStreamingMessage")
        await step.before(x)

        async def chunks():
            yield artifact_event(text, append=False)
            yield FINAL
        relayed = step.after(x, Relayed(200, {}, chunks=chunks()))
        return x, [c async for c in relayed.chunks]

    x, out = asyncio.run(go("all fine"))
    assert analysed == ["all fine"] and texts_of(out) == "all fine" and out[-1].endswith(FINAL)
    x, out = asyncio.run(go("some harm here"))
    assert b"harm here" not in b"".join(out) and b"guardrail_blocked" in out[-1]
    assert [(v["check"], v["stage"], v["action"]) for v in x.guardrails] == [("harm", "output", "block")]
