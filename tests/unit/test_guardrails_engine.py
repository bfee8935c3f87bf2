"""The guardrail engine: precedence between policies and checks, redaction, annotate, fail-open/closed, and the
sliding window over streamed output (matches split across chunks)."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from shared.domain.base import Pillar
from shared.errors import GuardrailBlocked, GuardrailUnavailable
from shared.guardrails.book import GuardrailBook
from shared.guardrails.engine import GuardrailEngine, compile_policy, span_checks
from shared.guardrails.policy import GuardrailPolicy, PolicySpec
from shared.guardrails.segments import Segment, apply_chat_input, chat_input
from shared.guardrails.stream import GuardedSse, WindowGuard
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


def policy(pid: str, checks: list[dict], scope: str = "project", **attach) -> GuardrailPolicy:
    return GuardrailPolicy(id=pid, project_id="proj", spec=PolicySpec.model_validate(
        {"id": pid, "attach": {"scope": scope, **attach}, "checks": checks}))


def run(policies, segments, stage="input", remote=None):
    return asyncio.run(GuardrailEngine(remote).evaluate([compile_policy(p) for p in policies], segments, stage))


PII = {"type": "pii", "name": "pii"}
WORDS_BLOCK = {"type": "deny_list", "name": "codename", "phrases": ["project x"]}


def test_redact_rewrites_only_the_matches_and_reports_labels_not_text():
    segs = [Segment("user", "mail jane@example.com or call +1 415 555 0100", ("m", 0)),
            Segment("system", "be nice", ("m", 1))]
    result = run([policy("pol", [PII])], segs)
    assert result.texts == ["mail [REDACTED:email] or call [REDACTED:phone]", "be nice"]
    [v] = result.verdicts
    assert (v.check, v.action, v.hits, v.detail) == ("pii", "redact", 2, {"labels": ["email", "phone"]})
    assert "jane" not in orjson.dumps(v.public()).decode()


def test_block_wins_over_redact_and_names_the_check():
    segs = [Segment("user", "jane@example.com about Project X", ())]
    with pytest.raises(GuardrailBlocked) as err:
        run([policy("pa", [PII]), policy("pb", [WORDS_BLOCK], "key", key_id="k1")], segs)
    assert err.value.status == 400 and err.value.code == "guardrail_blocked"
    assert err.value.details == {"policy": "pb", "check": "codename", "type": "deny_list", "stage": "input"}
    assert [v.check for v in err.value.verdicts] == ["pii", "codename"]  # the redact verdict is recorded too
    assert "Project X" not in err.value.message


def test_policies_run_project_then_resource_then_key_and_first_block_stops():
    # Each of three policies blocks the same text: the project one is reported; later ones never run.
    text = [Segment("user", "project x", ())]
    ps = [policy("pk", [{**WORDS_BLOCK, "name": "from-key"}], "key", key_id="k1"),
          policy("pr", [{**WORDS_BLOCK, "name": "from-model"}], "resource", pillar="models", resource="gpt"),
          policy("pz", [{**WORDS_BLOCK, "name": "from-project"}])]
    with pytest.raises(GuardrailBlocked) as err:
        run(ps, text)
    assert err.value.details["check"] == "from-project" and len(err.value.verdicts) == 1
    with pytest.raises(GuardrailBlocked) as err:
        run(ps[:2], text)
    assert err.value.details["check"] == "from-model"


def test_annotate_only_reports_and_roles_select_segments():
    checks = [{**WORDS_BLOCK, "action": "annotate", "roles": ["tool"]}]
    assert run([policy("pol", checks)], [Segment("user", "project x", ())]).verdicts == []
    result = run([policy("pol", checks)], [Segment("tool", "project x", ())])
    assert result.texts is None and [(v.action, v.hits) for v in result.verdicts] == [("annotate", 1)]


def test_stage_selects_checks_and_output_scans_the_assistant():
    checks = [{**PII, "stage": "output"}]
    assert run([policy("pol", checks)], [Segment("user", "a@b.co", ())]).verdicts == []
    out = run([policy("pol", checks)], [Segment("assistant", "a@b.co", ())], stage="output")
    assert out.texts == ["[REDACTED:email]"]


def test_disabled_policy_and_attachment_matching():
    p = policy("pr", [PII], "resource", pillar="models", resource="gpt")
    assert p.applies(Pillar.models, "gpt", None) and not p.applies(Pillar.models, "other", None)
    assert not p.applies(Pillar.tools, "gpt", None)
    k = policy("pk", [PII], "key", key_id="k1")
    assert k.applies(Pillar.agents, "x", "k1") and not k.applies(Pillar.agents, "x", "k2")
    k.spec.enabled = False
    assert not k.applies(Pillar.agents, "x", "k1")


CS = {"type": "content_safety", "name": "cs", "endpoint": "https://cs.example.com"}


def test_remote_check_fail_open_and_fail_closed():
    async def down(check, segs):
        raise GuardrailUnavailable("timed out")

    segs = [Segment("user", "hello", ())]
    result = run([policy("pol", [{**CS, "fail_mode": "open"}])], segs, remote=down)
    assert [(v.action, v.detail["fail_mode"]) for v in result.verdicts] == [("unavailable", "open")]
    with pytest.raises(GuardrailUnavailable) as err:
        run([policy("pol", [{**CS, "fail_mode": "closed"}])], segs, remote=down)
    assert err.value.status == 503 and err.value.details == {"policy": "pol", "check": "cs"}


def test_local_checks_run_before_remote_ones():
    called = []

    async def remote(check, segs):
        called.append(check.name)
        return None

    with pytest.raises(GuardrailBlocked):
        run([policy("pol", [CS, WORDS_BLOCK])], [Segment("user", "project x", ())], remote=remote)
    assert called == []  # the local block decided; no remote round trip


def test_chat_adapter_reads_and_rewrites_parts():
    body = {"messages": [{"role": "system", "content": "sys"},
                         {"role": "user", "content": [{"type": "text", "text": "a@b.co"},
                                                      {"type": "image_url", "image_url": {"url": "x"}}]},
                         {"role": "tool", "content": "tool says", "tool_call_id": "1"}]}
    segs = chat_input(body)
    assert [(s.role, s.text) for s in segs] == [("system", "sys"), ("user", "a@b.co"), ("tool", "tool says")]
    apply_chat_input(body, segs, ["sys", "X", "tool says"])
    assert body["messages"][1]["content"][0]["text"] == "X"
    emb = {"input": ["a", "b"]}
    apply_chat_input(emb, chat_input(emb), ["a", "Z"])
    assert emb == {"input": ["a", "Z"]}


def window(checks):
    return WindowGuard(span_checks([compile_policy(policy("pol", checks))]))


@pytest.mark.parametrize("cut", range(1, 20))
def test_window_catches_a_match_split_at_any_chunk_boundary(cut):
    g = window([{**PII, "stage": "output"}])
    text = "mail jane@example.com please"
    out = g.feed(text[:cut]) + g.feed(text[cut:]) + g.flush()
    assert out == "mail [REDACTED:email] please"


def test_window_bounds_what_is_held_back_and_blocks_before_release():
    g = window([{**WORDS_BLOCK, "stage": "output"}])
    assert g.window == len("project x") + 1
    long = "a" * 100
    assert g.feed(long) == "a" * (100 - g.window)  # only the window is held back
    g.feed(" proj")
    with pytest.raises(GuardrailBlocked):
        g.feed("ect x and more")


def sse(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def chunk(text, finish=None):
    return sse({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text},
                                                                  "finish_reason": finish}]})


def contents(raw: bytes) -> str:
    out = []
    for ev in raw.split(b"\n\n"):
        if ev.startswith(b"data: {"):
            for c in orjson.loads(ev[6:]).get("choices") or []:
                out.append((c.get("delta") or {}).get("content") or "")
    return "".join(out)


def test_guarded_sse_redacts_across_events_and_flushes_at_finish():
    g = GuardedSse(span_checks([compile_policy(policy("pol", [{**PII, "stage": "output"}]))]))
    raw = b"".join(g.events(c) for c in [chunk("write to jane@exa"), chunk("mple.com today"), chunk("", "stop"),
                                         b"data: [DONE]\n\n"])
    assert contents(raw) == "write to [REDACTED:email] today"
    assert "".join(g.released) == "write to [REDACTED:email] today"
    assert [(v.check, v.hits) for v in g.verdicts()] == [("pii", 1)]


def test_guarded_sse_flushes_before_done_when_no_finish_reason():
    g = GuardedSse(span_checks([compile_policy(policy("pol", [{**PII, "stage": "output"}]))]))
    raw = g.events(chunk("short text")) + g.events(b"data: [DONE]\n\n")
    assert contents(raw) == "short text" and raw.endswith(b"data: [DONE]\n\n")


def test_book_filters_per_call_and_invalidation_shows_changes():
    async def go():
        repo = Repository(MemoryDocumentStore(), GuardrailPolicy)
        book = GuardrailBook(repo, ttl=60, max_stale=60)
        await repo.create(policy("proj-wide", [PII]))
        await repo.create(policy("for-gpt", [PII], "resource", pillar="models", resource="gpt"))
        first = [p.id for p in await book.for_resources("proj", Pillar.models, ("gpt",), "k1")]
        other = [p.id for p in await book.for_resources("proj", Pillar.models, ("other",), "k1")]
        await repo.create(policy("for-key", [PII], "key", key_id="k1"))
        cached = [p.id for p in await book.for_resources("proj", Pillar.models, ("other",), "k1")]
        book.invalidate("proj")
        fresh = [p.id for p in await book.for_resources("proj", Pillar.models, ("other",), "k1")]
        return first, other, cached, fresh

    first, other, cached, fresh = asyncio.run(go())
    assert sorted(first) == ["for-gpt", "proj-wide"] and other == ["proj-wide"]
    assert cached == ["proj-wide"] and sorted(fresh) == ["for-key", "proj-wide"]
