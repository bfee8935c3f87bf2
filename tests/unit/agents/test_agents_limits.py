"""Per-agent and per-key limits in process: the rules (effective limits, skills, size, turns, in-flight, task
time with an injected clock) and the same limits on the real pipeline (memory stores, httpx.MockTransport)."""
from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from shared.domain.base import Pillar
from shared.domain.quotas import Quota
from shared.errors import (AgentBusy, DependencyUnavailable, MaxTurnsExceeded, PayloadTooLarge, RateLimited,
                           ResourceNotAllowed, ValidationFailed)
from shared.pillars.agents.domain import Agent, AgentLimits, AgentSpec, MemoryAgentDirectory
from shared.pillars.agents.limits import (InFlight, KeyAgentPolicy, KeyAgentPolicySpec, KeyPolicies, LimitQuotas,
                                          Turns, check_size, check_skill, conversation_of, effective, rate_quotas,
                                          requested_skill, visible_skills, with_skills, within)
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from tests.unit.agents.test_a2a_spec import MSG, World, agent


def skilled(*skills: str, **limits) -> Agent:
    spec = AgentSpec.model_validate({"name": "S", "interfaces": [{"url": "http://up.test/rpc"}], "limits": limits,
                                     "skills": [{"id": s, "name": s} for s in skills]})
    return Agent(id="s", project_id="p1", spec=spec, lifecycle="published")


def test_the_smaller_of_agent_and_key_limits_applies():
    merged = effective(AgentLimits(requests_per_minute=10, max_turns=5),
                       AgentLimits(requests_per_minute=3, concurrent_tasks=2, task_timeout_seconds=9.5))
    assert dataclasses.asdict(merged) == {"requests_per_minute": 3, "concurrent_tasks": 2, "max_turns": 5,
                                   "max_message_bytes": None, "task_timeout_seconds": 9.5}
    assert effective(AgentLimits(max_turns=5), None).max_turns == 5


def test_skills_per_key():
    a = skilled("echo", "summarize")
    policy = KeyAgentPolicy(id="agent-key.k1", key_id="k1", project_id="p1", skills={"s": ["summarize"]})
    check_skill(a, None, None)  # no policy: anything
    check_skill(a, policy, "summarize")
    for skill in (None, "echo"):
        with pytest.raises(ResourceNotAllowed) as refused:
            check_skill(a, policy, skill)
        assert refused.value.code == "skill_not_allowed"
    with pytest.raises(ValidationFailed):
        check_skill(a, None, "nope")
    other = KeyAgentPolicy(id="agent-key.k2", key_id="k2", project_id="p1", skills={"someone-else": ["x"]})
    check_skill(a, other, None)  # a policy naming other agents leaves this one open
    assert [s.id for s in with_skills(a, visible_skills(a, policy)).spec.skills] == ["summarize"]
    assert with_skills(a, visible_skills(a, None)) is a
    assert requested_skill({"message": {"metadata": {"skillId": "echo"}}}) == "echo"
    assert requested_skill({"message": {}, "metadata": {"skill": "x"}}) == "x"
    assert requested_skill({"message": {"metadata": {"skillId": 3}}}) is None


def test_key_policy_contract_is_bounded():
    with pytest.raises(ValueError):
        KeyAgentPolicySpec(skills={"a1": ["s"] * 129})
    with pytest.raises(ValueError):
        KeyAgentPolicySpec(skills={"Not An Id": ["s"]})
    with pytest.raises(ValueError):
        KeyAgentPolicySpec(limits={"concurrent_tasks": 0})


def test_message_size():
    check_size(AgentLimits(max_message_bytes=10), 10)
    with pytest.raises(PayloadTooLarge):
        check_size(AgentLimits(max_message_bytes=10), 11)


def test_in_flight_refuses_past_the_limit_and_gives_back():
    slots = InFlight()
    assert slots.take("a", None) is False  # no limit: nothing held
    assert slots.take("a", 2) and slots.take("a", 2)
    with pytest.raises(AgentBusy):
        slots.take("a", 2)
    slots.give("a")
    assert slots.count("a") == 1 and slots.take("a", 2)
    slots.give("a")
    slots.give("a")
    assert slots.count("a") == 0


async def test_turns_are_counted_per_conversation_and_fail_open():
    turns = Turns(MemoryCounterStore())
    assert [await turns.count("p1", "a", "c1", 2) for _ in range(2)] == [1, 2]
    with pytest.raises(MaxTurnsExceeded):
        await turns.count("p1", "a", "c1", 2)
    assert await turns.count("p1", "a", "c2", 2) == 1

    class Down:
        async def add(self, *args):
            raise DependencyUnavailable("down")

    down = Turns(Down())  # type: ignore[arg-type]
    assert await down.count("p1", "a", "c1", 1) == 0 and down.unenforced == 1


def test_a_conversation_is_named_when_the_client_names_none():
    params = {"message": {"messageId": "m"}}
    assert conversation_of(params, assign=False) is None
    named = conversation_of(params, assign=True)
    assert named and params["message"]["contextId"] == named
    assert conversation_of({"message": {"taskId": "t1"}}, assign=True) == "t1"


async def test_within_ends_a_stream_at_its_deadline():
    now = [0.0]

    async def events():
        for i in range(5):
            now[0] += 1.0  # each event takes one (injected) second
            yield i

    got = []
    with pytest.raises(TimeoutError):
        async for e in within(events(), 2.5, lambda: now[0]):
            got.append(e)
    assert got == [0, 1]

    async def stuck():
        yield 0
        await asyncio.sleep(10)
        yield 1

    real = asyncio.get_running_loop().time
    with pytest.raises(TimeoutError):
        async for _ in within(stuck(), real() + 0.05, real):
            pass


async def test_rate_limits_become_quotas_the_pipeline_admits():
    a = skilled("echo", requests_per_minute=2)
    assert rate_quotas("p1", a, None, a.spec.limits, None)[0].limits.requests_per_minute == 2
    store = MemoryDocumentStore()
    policies = KeyPolicies(Repository(store, KeyAgentPolicy), ttl=60, max_stale=600)
    await policies.repo.create(KeyAgentPolicy(id="agent-key.k1", key_id="k1", project_id="p1",
                                              limits=AgentLimits(requests_per_minute=1)))
    book = LimitQuotas(QuotaBook(Repository(store, Quota), ttl=60, max_stale=600),
                       lambda pid, aid: _agent(a), policies)
    quotas = await book.for_call("p1", "k1", Pillar.agents, "s")
    assert sorted(q.limits.requests_per_minute for q in quotas) == [1, 2]
    enforcer = QuotaEnforcer(MemoryCounterStore())
    await enforcer.admit(quotas, tokens=0, cost_micros=0)
    with pytest.raises(RateLimited):
        await enforcer.admit(quotas, tokens=0, cost_micros=0)
    assert len(await book.for_call("p1", None, Pillar.agents, "s")) == 1  # no key policy without a key


async def _agent(a: Agent) -> Agent:
    return a


# ---- on the pipeline

def sse(*events: bytes) -> bytes:
    return b"".join(b"data: " + e + b"\n\n" for e in events)


TASK = (b'{"jsonrpc":"2.0","id":"r1","result":{"task":{"id":"t1","contextId":"c1",'
        b'"status":{"state":"TASK_STATE_COMPLETED"}}}}')


async def test_a_stream_holds_its_slot_until_it_ends_and_every_refusal_is_logged():
    w = World(lambda req: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse(TASK)),
              agent("1.0", concurrent_tasks=1))
    response = await w.call("SendStreamingMessage", MSG, stream=True)
    spec = w.pipeline.spec
    assert spec.in_flight.count("p1/a") == 1
    with pytest.raises(AgentBusy):
        await w.call("SendMessage", MSG)
    chunks = [c async for c in response.body_iterator]
    assert chunks and spec.in_flight.count("p1/a") == 0  # the end of the stream gave it back
    rows = await w.rows()
    assert [(r.operation, r.status, r.error_code) for r in rows] == [
        ("SendMessage", 429, "agent_concurrency_exceeded"), ("SendStreamingMessage", 200, None)]


async def test_task_time_on_a_non_streaming_call():
    async def slow(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=TASK)

    w = World(slow, agent("1.0", task_timeout_seconds=0.05))
    with pytest.raises(Exception) as failed:
        await w.call("SendMessage", MSG)
    assert getattr(failed.value, "code", "") == "upstream_timeout"


async def test_the_directory_refuses_before_anything_is_held():
    w = World(lambda req: httpx.Response(200, content=TASK), agent("1.0", concurrent_tasks=1))
    w.pipeline.spec._directory = MemoryAgentDirectory([])
    with pytest.raises(Exception):
        await w.call("SendMessage", MSG)
    assert w.pipeline.spec.in_flight.count("p1/a") == 0


async def test_forgetting_a_purged_keys_policy_deletes_it_and_is_idempotent():
    policies = KeyPolicies(Repository(MemoryDocumentStore(), KeyAgentPolicy), ttl=60, max_stale=600)
    await policies.repo.create(KeyAgentPolicy(id="agent-key.k1", key_id="k1", project_id="p1",
                                              limits=AgentLimits(requests_per_minute=1)))
    assert (await policies.get("p1", "k1")) is not None  # cached
    await policies.forget("p1", "k1")
    assert await policies.repo.find("p1", "agent-key.k1") is None
    assert await policies.get("p1", "k1") is None  # the cache entry went too
    await policies.forget("p1", "k1")  # a retried purge
    await policies.forget("p1", "never-had-one")
