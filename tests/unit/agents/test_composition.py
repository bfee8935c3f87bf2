"""Composite agents in process: the real pipelines (agents + composite) over memory stores, member agents faked
with httpx.MockTransport. Both modes, the one budget per task (hops, tokens, tool calls, time; nested composites
share it), stable failure reasons with partial output, streaming, GetTask, governance per hop (key scope, request
log under one correlation id) and the registry's checks (published members only, no cycles)."""
from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest
from pydantic import ValidationError

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.errors import ValidationFailed
from shared.flags.service import FlagService
from shared.pillars.agents.a2a.protocol import RpcCall
from shared.pillars.agents.composition.assemble import assemble_front
from shared.pillars.agents.composition.contracts import MEMBER_PATTERN, Composition, TaskBudget
from shared.pillars.agents.composition.runner import route
from shared.pillars.agents.composition.validate import CompositionCheck
from shared.pillars.agents.domain import AGENT_ID_PATTERN, Agent, AgentSpec, MemoryAgentDirectory
from shared.pillars.agents.spec import AgentsSpec
from shared.pillars.agents.wire import Message, Part
from shared.pipeline import Exchange, Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog


def member(aid: str, lifecycle: str = "published") -> Agent:
    spec = AgentSpec(name=aid, interfaces=[{"url": f"http://{aid}.test/rpc"}])
    return Agent(id=aid, project_id="p1", spec=spec, lifecycle=lifecycle)


def composite(aid: str, comp: dict, lifecycle: str = "published") -> Agent:
    spec = AgentSpec(name=aid, source="composite", composition=Composition.model_validate(comp))
    return Agent(id=aid, project_id="p1", spec=spec, lifecycle=lifecycle)


class Members:
    """Fake member agents: each answers a completed task whose artifact is `<id>(<input text>)`, reporting the
    tokens and tool calls configured for it; `fail` answers a failed task; `err` a JSON-RPC error."""

    def __init__(self, usage: dict[str, tuple[int, int]] | None = None, on_call=lambda: None) -> None:
        self.usage = usage or {}
        self.calls: list[tuple[str, str]] = []
        self.on_call = on_call

    def __call__(self, req: httpx.Request) -> httpx.Response:
        aid = req.url.host.split(".")[0]
        body = json.loads(req.content)
        text = body["params"]["message"]["parts"][0]["text"]
        self.calls.append((aid, text))
        self.on_call()
        if aid == "slow":
            return self._hang()
        if aid == "err":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "error": {"code": -32603, "message": "boom"}})
        tokens, tools = self.usage.get(aid, (0, 0))
        state = "TASK_STATE_FAILED" if aid == "fail" else "TASK_STATE_COMPLETED"
        task = {"id": f"t-{aid}", "contextId": "c", "status": {"state": state},
                "artifacts": [{"artifactId": "a", "parts": [{"text": f"{aid}({text})"}]}],
                "metadata": {"usage": {"totalTokens": tokens, "toolCalls": tools}}}
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {"task": task}})


    @staticmethod
    async def _hang() -> httpx.Response:
        import asyncio

        await asyncio.sleep(30)
        raise AssertionError("the task's time budget should have cancelled this hop")


class StaticCredentials:
    async def headers(self, agent: Agent) -> dict[str, str]:
        return {}


class World:
    def __init__(self, agents: list[Agent], members: Members | None = None, clock=time.monotonic) -> None:
        self.members = members or Members()
        store = MemoryDocumentStore()
        self.sink = MemoryUsageSink()
        self.usage = UsageLog(self.sink, flush_seconds=60)
        self.store = store
        self.flags = flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60,
                                         max_stale=600)
        self.directory = directory = MemoryAgentDirectory(agents)
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.members))
        quotas = QuotaBook(Repository(store, Quota), ttl=60, max_stale=600)
        enforcer = QuotaEnforcer(MemoryCounterStore())
        agents_pipeline = Pipeline(AgentsSpec(directory=directory, http=http, credentials=StaticCredentials()),
                                   quotas=quotas, enforcer=enforcer, breakers=Breakers(), usage=self.usage,
                                   flags=flags)
        self.front = assemble_front(directory, lambda: agents_pipeline, store=store, credentials=StaticCredentials(),
                                    quotas=quotas, enforcer=enforcer, usage=self.usage, flags=flags)
        self.front._composites().spec._clock = clock  # type: ignore[attr-defined]

    async def call(self, agent: str, method: str, params: dict, *, version: str = "1.0", key: str = "k1",
                   scopes=None, stream: bool = False, rid: str = "corr-1"):
        p = Principal(kind="virtual_key", subject=key, project_id="p1", key_id=key, key_prefix=f"sk-gw-{key}",
                      scopes=scopes or {})
        x = Exchange(Pillar.agents, method, p, rid, RpcCall(1, method, params, version), {}, time.perf_counter(),
                     stream=stream, resource=agent)
        x.scratch["body_bytes"] = 10
        return await self.front.run(x)

    async def send(self, agent: str, text: str, **kw) -> dict:
        r = await self.call(agent, "SendMessage", msg(text), **kw)
        body = orjson.loads(r.body)
        assert "result" in body, body
        return body["result"]["task"]

    async def rows(self):
        await self.usage.close()
        return self.sink.records


def msg(text: str, **meta) -> dict:
    m = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}
    if meta:
        m["metadata"] = meta
    return {"message": m}


SEQ = {"mode": "sequential", "members": ["aa", "bb"]}
ROUTER = {"mode": "router", "default": "aa", "rules": [
    {"agent": "bb", "keywords": ["invoice", "refund please"]}, {"agent": "cc", "skills": ["translate"]}]}


def answer(task: dict) -> str:
    return task["artifacts"][-1]["parts"][0]["text"]


# ---- contracts

def test_the_member_pattern_is_the_agent_id_pattern():
    assert MEMBER_PATTERN == AGENT_ID_PATTERN


@pytest.mark.parametrize("bad", [
    {"mode": "sequential"},
    {"mode": "sequential", "members": ["aa"], "default": "bb"},
    {"mode": "router", "rules": [{"agent": "bb", "keywords": ["x"]}]},
    {"mode": "router", "default": "aa", "members": ["bb"]},
    {"mode": "router", "default": "aa", "rules": [{"agent": "bb"}]},
    {"mode": "sequential", "members": ["aa"] * 17},
    {"mode": "sequential", "members": ["aa"], "budget": {"max_hops": 65}},
    {"mode": "sequential", "members": ["aa"], "budget": {"max_seconds": "inf"}},
    {"mode": "sequential", "members": ["aa"], "budget": {"max_tokens": 0}},
    {"mode": "sequential", "members": ["Not An Id"]},
])
def test_compositions_are_validated_and_bounded(bad):
    with pytest.raises(ValidationError):
        Composition.model_validate(bad)


def test_only_a_composite_agent_has_a_composition_and_it_has_no_upstream():
    comp = Composition.model_validate(SEQ)
    with pytest.raises(ValidationError):
        AgentSpec(name="x", source="composite")
    with pytest.raises(ValidationError):
        AgentSpec(name="x", interfaces=[{"url": "http://a.test/"}], composition=comp)
    with pytest.raises(ValidationError):
        AgentSpec(name="x", source="composite", composition=comp, interfaces=[{"url": "http://a.test/"}])


def test_router_rules_in_order_skill_keyword_whole_words_then_default():
    comp = Composition.model_validate(ROUTER)
    m = lambda text, **meta: Message.model_validate(msg(text, **meta)["message"])  # noqa: E731
    assert route(comp, m("my INVOICE is late"))[0] == "bb"
    assert route(comp, m("Refund please, now"))[0] == "bb"
    assert route(comp, m("invoices are words too"))[0] == "aa"  # whole words only
    assert route(comp, m("hola", skill="translate")) == ("cc", "rule 1: skill 'translate'")
    assert route(comp, m("nothing matches")) == ("aa", "default")


# ---- the registry's checks

async def test_the_registry_refuses_unknown_unpublished_self_and_cyclic_members():
    agents = {a.id: a for a in [member("aa"), member("dd", "draft"),
                                composite("c1", {"mode": "sequential", "members": ["aa", "c2"]}),
                                composite("c2", {"mode": "router", "default": "c3"}),
                                composite("c3", {"mode": "sequential", "members": ["aa"]})]}

    async def find(pid, aid):
        return agents.get(aid)

    check = CompositionCheck(find)
    spec = lambda comp: AgentSpec(name="x", source="composite", composition=Composition.model_validate(comp))  # noqa
    await check("p1", "new", spec({"mode": "sequential", "members": ["aa", "c1"]}))  # nesting without a cycle: fine
    for comp, code in [({"mode": "sequential", "members": ["aa", "zz"]}, "unknown_member"),
                       ({"mode": "router", "default": "dd"}, "member_not_published"),
                       ({"mode": "sequential", "members": ["new"]}, "composition_cycle")]:
        with pytest.raises(ValidationFailed) as e:
            await check("p1", "new", spec(comp))
        assert e.value.code == code, comp
    # c3 → c1 → c2 → c3 would close a cycle through two nested composites
    with pytest.raises(ValidationFailed) as e:
        await check("p1", "c3", spec({"mode": "sequential", "members": ["c1"]}))
    assert e.value.code == "composition_cycle" and "c3 → c1 → c2 → c3" in e.value.message


# ---- the modes

async def test_sequential_feeds_each_output_to_the_next_and_logs_every_hop_under_one_correlation_id():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)], Members({"aa": (10, 1), "bb": (5, 2)}))
    task = await w.send("seq", "hi", rid="corr-7")
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert answer(task) == "bb(aa(hi))"
    assert w.members.calls == [("aa", "hi"), ("bb", "aa(hi)")]
    gw = task["metadata"]["gateway"]
    assert [h["agent"] for h in gw["hops"]] == ["aa", "bb"] and gw["budget"]["tokens"] == 15
    assert gw["budget"]["toolCalls"] == 3 and gw["correlationId"] == "corr-7"
    rows = await w.rows()
    assert {r.request_id for r in rows} == {"corr-7"}
    hops = [r for r in rows if r.resource in ("aa", "bb")]
    assert [(r.resource, r.attributes["hop"], r.attributes["composite"]) for r in hops] == [("aa", 1, "seq"),
                                                                                          ("bb", 2, "seq")]
    [top] = [r for r in rows if r.resource == "seq"]
    assert top.attributes["composite_hops"] == 2 and top.attributes["task_tokens"] == 15
    assert top.attributes["task_state"] == "TASK_STATE_COMPLETED" and top.status == 200


async def test_router_calls_only_the_member_its_rules_pick():
    w = World([member("aa"), member("bb"), member("cc"), composite("rt", ROUTER)])
    assert answer(await w.send("rt", "about my invoice")) == "bb(about my invoice)"
    task = await w.send("rt", "hello")
    assert answer(task) == "aa(hello)" and task["metadata"]["gateway"]["hops"][0]["why"] == "default"
    assert [a for a, _ in w.members.calls] == ["bb", "aa"]


async def test_a_v03_client_gets_the_composite_answer_in_its_own_version():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    params = {"message": {"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text",
                                                                                          "text": "old"}]}}
    from shared.pillars.agents.a2a import bridge
    r = await w.call("seq", "SendMessage", bridge.params_to_v1("SendMessage", params), version="0.3")
    res = orjson.loads(r.body)["result"]
    assert res["kind"] == "task" and res["status"]["state"] == "completed"
    assert res["artifacts"][-1]["parts"][0] == {"kind": "text", "text": "bb(aa(old))"}


# ---- one budget per task

async def test_a_token_budget_stops_the_task_with_partial_output_and_a_stable_reason():
    comp = {**SEQ, "members": ["aa", "bb", "aa"], "budget": {"max_tokens": 100}}
    w = World([member("aa"), member("bb"), composite("seq", comp)], Members({"aa": (60, 0), "bb": (60, 0)}))
    task = await w.send("seq", "go")
    assert task["status"]["state"] == "TASK_STATE_FAILED"
    gw = task["metadata"]["gateway"]
    assert (gw["reason"], gw["limit"]) == ("budget_exhausted", "tokens")
    # partial output reported: the hop that went over ran and spent its tokens, so its output is there too
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["aa(go)", "bb(aa(go))"]
    assert "budget_exhausted" in task["status"]["message"]["parts"][0]["text"]
    assert [a for a, _ in w.members.calls] == ["aa", "bb"]  # the third hop never ran
    rows = await w.rows()
    [top] = [r for r in rows if r.resource == "seq"]
    assert top.attributes["stop_reason"] == "budget_exhausted" and top.attributes["budget_limit"] == "tokens"
    assert top.attributes["task_state"] == "TASK_STATE_FAILED" and len(rows) == 3


async def test_hop_and_tool_call_budgets():
    w = World([member("aa"), member("bb"),
               composite("hops", {**SEQ, "budget": {"max_hops": 1}}),
               composite("tools", {**SEQ, "budget": {"max_tool_calls": 2}})], Members({"aa": (0, 3)}))
    task = await w.send("hops", "x")
    assert task["metadata"]["gateway"]["limit"] == "hops" and answer(task) == "aa(x)"
    task = await w.send("tools", "x")
    assert task["metadata"]["gateway"]["limit"] == "tool_calls"


async def test_the_time_budget_is_checked_before_each_hop():
    now = [0.0]

    def slow_member():
        now[0] += 61.0  # the first hop takes 61 s of the task's 60

    w = World([member("aa"), member("bb"), composite("seq", {**SEQ, "budget": {"max_seconds": 60}})],
              Members(on_call=slow_member), clock=lambda: now[0])
    task = await w.send("seq", "x")
    assert task["metadata"]["gateway"]["limit"] == "time" and [a for a, _ in w.members.calls] == ["aa"]


async def test_a_hop_still_running_when_the_time_budget_ends_is_cancelled_and_logged():
    w = World([member("aa"), member("slow"),
               composite("seq", {"mode": "sequential", "members": ["aa", "slow"], "budget": {"max_seconds": 0.3}})])
    started = time.perf_counter()
    task = await w.send("seq", "x")
    assert time.perf_counter() - started < 5
    gw = task["metadata"]["gateway"]
    assert (gw["reason"], gw["limit"]) == ("budget_exhausted", "time") and gw["hops"][-1]["state"] == "timeout"
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["aa(x)"]
    rows = await w.rows()
    [cut] = [r for r in rows if r.resource == "slow"]
    assert cut.status == 499 and cut.attributes["hop"] == 2  # the cancelled hop still released and logged


async def test_nested_composites_share_one_budget():
    inner = composite("inner", {"mode": "sequential", "members": ["aa", "aa"]})
    outer = composite("outer", {"mode": "sequential", "members": ["bb", "inner", "bb"], "budget": {"max_hops": 3}})
    w = World([member("aa"), member("bb"), inner, outer])
    task = await w.send("outer", "x")
    gw = task["metadata"]["gateway"]
    # bb (1), inner (2), inner's first aa (3): the inner's second aa is the fourth hop of the same task
    assert (task["status"]["state"], gw["reason"], gw["limit"]) == ("TASK_STATE_FAILED", "budget_exhausted", "hops")
    assert [a for a, _ in w.members.calls] == ["bb", "aa"]


# ---- failures of members

async def test_a_member_the_key_may_not_call_is_refused_and_the_task_fails_cleanly():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    task = await w.send("seq", "x", scopes={Pillar.agents: frozenset({"seq", "aa"})})
    gw = task["metadata"]["gateway"]
    assert (gw["reason"], gw["agent"], gw["code"]) == ("member_refused", "bb", "agent_not_allowed")
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["aa(x)"]


async def test_a_failed_or_erroring_member_fails_the_task():
    w = World([member("aa"), member("fail"), member("err"),
               composite("s1", {"mode": "sequential", "members": ["aa", "fail", "aa"]}),
               composite("s2", {"mode": "sequential", "members": ["err"]})])
    gw = (await w.send("s1", "x"))["metadata"]["gateway"]
    assert (gw["reason"], gw["agent"], gw["state"]) == ("member_failed", "fail", "TASK_STATE_FAILED")
    gw = (await w.send("s2", "x"))["metadata"]["gateway"]
    assert (gw["reason"], gw["code"]) == ("member_failed", "-32603")


# ---- streaming and tasks

async def test_streaming_emits_the_task_hop_progress_the_answer_and_the_final_state():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    r = await w.call("seq", "SendStreamingMessage", msg("s"), stream=True)
    chunks = [c async for c in r.body_iterator]
    events = [orjson.loads(line[6:]) for c in chunks for line in c.split(b"\n") if line.startswith(b"data: ")]
    kinds = [next(iter(e["result"])) for e in events]
    assert kinds[0] == "task" and kinds.count("statusUpdate") == 4 and kinds[-1] == "statusUpdate"
    assert events[-2]["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"] == "bb(aa(s))"
    assert events[-1]["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    task_id = events[0]["result"]["task"]["id"]
    got = orjson.loads((await w.call("seq", "GetTask", {"id": task_id})).body)["result"]
    assert got["status"]["state"] == "TASK_STATE_COMPLETED" and answer(got) == "bb(aa(s))"


async def test_a_v03_stream_of_a_composite_is_bridged_and_ends_final():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    r = await w.call("seq", "SendStreamingMessage", msg("s"), version="0.3", stream=True)
    body = b"".join([c async for c in r.body_iterator])
    events = [orjson.loads(line[6:])["result"] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[0]["kind"] == "task" and events[-1]["kind"] == "status-update"
    assert events[-1]["status"]["state"] == "completed" and events[-1]["final"] is True
    assert not any(e.get("final") for e in events[:-1])


async def test_a_stream_closed_mid_task_leaves_a_canceled_task_not_a_working_one():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    r = await w.call("seq", "SendStreamingMessage", msg("s"), stream=True)
    chunks = r.body_iterator
    first = await chunks.__anext__()  # the task, stored when it started
    task_id = orjson.loads(first[6:])["result"]["task"]["id"]
    await chunks.aclose()  # the client goes away
    got = orjson.loads((await w.call("seq", "GetTask", {"id": task_id})).body)["result"]
    assert got["status"]["state"] == "TASK_STATE_CANCELED"
    assert got["metadata"]["gateway"]["reason"] == "client_closed"
    [row] = [r for r in await w.rows() if r.operation == "SendStreamingMessage"]  # once, when its stream ended
    assert row.attributes["stop_reason"] == "client_closed"


async def test_cancel_task_stops_a_running_stream_before_its_next_hop():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    r = await w.call("seq", "SendStreamingMessage", msg("s"), stream=True)
    chunks = r.body_iterator
    task_id = orjson.loads((await chunks.__anext__())[6:])["result"]["task"]["id"]
    other = orjson.loads((await w.call("seq", "CancelTask", {"id": task_id}, key="k2")).body)
    assert other["error"]["code"] == -32001  # not this key's task
    canceled = orjson.loads((await w.call("seq", "CancelTask", {"id": task_id})).body)["result"]
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    rest = b"".join([c async for c in chunks])
    last = orjson.loads(rest.strip().split(b"\n\n")[-1][6:])["result"]["statusUpdate"]
    assert last["status"]["state"] == "TASK_STATE_CANCELED" and last["metadata"]["gateway"]["reason"] == "canceled"
    assert w.members.calls == []  # stopped before its first hop
    got = orjson.loads((await w.call("seq", "GetTask", {"id": task_id})).body)["result"]
    assert got["status"]["state"] == "TASK_STATE_CANCELED"
    again = orjson.loads((await w.call("seq", "CancelTask", {"id": task_id})).body)
    assert again["error"]["code"] == -32002


async def test_get_task_is_for_the_key_that_started_it_and_cancel_is_refused():
    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    task = await w.send("seq", "x")
    other = orjson.loads((await w.call("seq", "GetTask", {"id": task["id"]}, key="k2")).body)
    assert other["error"]["code"] == -32001
    assert orjson.loads((await w.call("seq", "GetTask", {"id": "../x"})).body)["error"]["code"] == -32001
    cancel = orjson.loads((await w.call("seq", "CancelTask", {"id": task["id"]})).body)
    assert cancel["error"]["code"] == -32002


async def test_a_malformed_message_is_invalid_params_before_any_hop():
    from shared.pillars.agents.a2a.protocol import A2AError

    w = World([member("aa"), member("bb"), composite("seq", SEQ)])
    with pytest.raises(A2AError) as e:
        await w.call("seq", "SendMessage", {"message": {"role": "nobody"}})
    assert e.value.code == -32602 and w.members.calls == []


async def test_a_suspended_composite_takes_no_calls():
    from shared.errors import AgentSuspended

    w = World([member("aa"), member("bb"), composite("seq", SEQ, lifecycle="suspended")])
    with pytest.raises(AgentSuspended):
        await w.call("seq", "SendMessage", msg("x"))
    assert w.members.calls == []


def test_budget_defaults_are_bounded():
    b = TaskBudget()
    assert b.max_hops == 8 and b.max_seconds == 120 and b.max_tokens is None


async def test_the_pillars_registry_checks_compositions_on_register_and_update():
    from shared.config import Settings
    from shared.egress import EgressPolicy
    from shared.pillars.agents.pillar import AgentsPillar

    pillar = AgentsPillar(Settings(), MemoryDocumentStore(), EgressPolicy(allow_loopback=True), None,  # type: ignore
                          project_exists=lambda pid: None)
    reg = pillar.registry
    await reg.register("p1", "aa", member("aa").spec, "admin", lifecycle="published")
    await reg.register("p1", "dd", member("dd").spec, "admin")  # a draft
    seq = composite("seq", SEQ | {"members": ["aa"]}).spec
    await reg.register("p1", "seq", seq, "admin")
    with pytest.raises(ValidationFailed) as e:
        await reg.register("p1", "bad", composite("bad", {"mode": "router", "default": "dd"}).spec, "admin")
    assert e.value.code == "member_not_published"
    with pytest.raises(ValidationFailed) as e:
        await reg.update("p1", "seq", seq.model_copy(update={"composition": Composition.model_validate(
            {"mode": "sequential", "members": ["aa", "seq"]})}), "admin")
    assert e.value.code == "composition_cycle"
    assert any(r.kind == "agent_composite_task" for r in pillar.owned_repositories)  # cascaded with the project


# ---- the developer's playground (same front, the developer's identity)

async def test_the_playground_shows_reply_states_and_the_trace_and_stops_where_governance_refuses():
    from shared.auth.principal import Role
    from shared.pillars.agents.playground import AgentPlayground, AgentPlaygroundCall

    w = World([member("aa"), member("bb"), composite("seq", SEQ), composite("off", SEQ, lifecycle="suspended")])
    dev = Principal(kind="entra", subject="dev@x", roles=frozenset({Role.developer}))
    pg = AgentPlayground(w.directory, w.flags, w.front.run)
    await Repository(w.store, Project).create(Project(id="p1", name="P", pillars={"agents": {"enabled": True}}))
    await Repository(w.store, Project).create(Project(id="p2", name="P2"))  # agents pillar off
    out = await pg.run(dev, "p2", AgentPlaygroundCall(agent="seq", text="x"))
    assert not out.ok and out.trace[-1].step == "pillar_flag" and "pillar_disabled" in out.trace[-1].detail
    out = await pg.run(dev, "p1", AgentPlaygroundCall(agent="seq", text="x"))
    assert out.ok and out.reply == "bb(aa(x))" and out.task_id
    assert out.states[0] == "TASK_STATE_SUBMITTED" and out.states[-1] == "TASK_STATE_COMPLETED"
    steps = [t.step for t in out.trace]
    assert steps == ["pillar_flag", "resolve", "admit", "route", "hop 1", "hop 2", "answer"], steps
    assert "composite" in out.trace[1].detail and out.request_id in out.trace[-1].detail
    out = await pg.run(dev, "p1", AgentPlaygroundCall(agent="off", text="x"))
    assert not out.ok and out.trace[-1].step == "resolve" and "agent_suspended" in out.trace[-1].detail
    out = await pg.run(dev, "p1", AgentPlaygroundCall(agent="aa", text="direct"))
    assert out.ok and out.reply == "aa(direct)" and out.states == ["TASK_STATE_COMPLETED"]
    rows = [r for r in await w.rows() if r.request_id == out.request_id]
    assert rows and rows[0].attributes["caller"] == "dev@x"  # logged like any call, as the developer
