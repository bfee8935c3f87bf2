"""Agents registry contracts and lifecycle rules (in process)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.auth.principal import Principal
from shared.errors import AgentRetired, AgentSuspended, InvalidTransition, NotFound
from shared.pillars.agents.domain import (TRANSITIONS, Agent, AgentBackend, AgentSpec, AwsAuth, GoogleAuth,
                                          MemoryAgentDirectory, SecretAuth, check_invocable, check_transition)
from shared.pillars.agents.wire import Message, StreamResponse
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

IFACE = [{"url": "https://agent.example/a2a", "protocol_version": "1.0", "binding": "jsonrpc"}]


def agent(id: str = "helper", lifecycle: str = "published", **spec) -> Agent:
    return Agent(id=id, project_id="p1", lifecycle=lifecycle,
                 spec=AgentSpec(name=id, interfaces=IFACE, **spec))


@pytest.mark.parametrize("current,target", [(c, t) for c, ts in TRANSITIONS.items() for t in ts])
def test_allowed_transitions_pass(current, target):
    check_transition(current, target)


@pytest.mark.parametrize("current,target", [
    ("draft", "deprecated"), ("draft", "suspended"), ("retired", "published"), ("retired", "draft"),
    ("published", "draft"), ("published", "published"), ("suspended", "draft")])
def test_invalid_transitions_are_409(current, target):
    with pytest.raises(InvalidTransition) as err:
        check_transition(current, target)
    assert err.value.status == 409 and err.value.details["from"] == current


def test_published_is_invocable_without_headers():
    assert check_invocable(agent()).headers == {}


def test_deprecated_answers_with_deprecation_and_successor_link():
    inv = check_invocable(agent(lifecycle="deprecated", replacement="helper-v2"))
    assert inv.headers["Deprecation"].startswith("@")
    assert inv.headers["Link"] == '</agents/helper-v2/.well-known/agent-card.json>; rel="successor-version"'


@pytest.mark.parametrize("state,error,status", [
    ("suspended", AgentSuspended, 403), ("retired", AgentRetired, 410), ("draft", NotFound, 404)])
def test_not_invocable_states(state, error, status):
    with pytest.raises(error) as err:
        check_invocable(agent(lifecycle=state, replacement="next"))
    assert err.value.status == status
    if state != "draft":  # a draft is not even visible: nothing about it leaks
        assert err.value.details["replacement"] == "next"


@pytest.mark.parametrize("bad", ["GATEWAY_ADMIN_KEY", "COSMOS_CONNECTION_STRING", "upstream_secret_x"])
def test_outbound_credentials_only_from_upstream_secret_settings(bad):
    with pytest.raises(ValidationError):
        SecretAuth(setting=bad)
    with pytest.raises(ValidationError):
        GoogleAuth(service_account_setting=bad)
    with pytest.raises(ValidationError):
        AwsAuth(region="us-east-1", access_key_id_setting=bad, secret_access_key_setting="UPSTREAM_SECRET_S")


def test_aws_keys_come_in_pairs():
    with pytest.raises(ValidationError):
        AwsAuth(region="us-east-1", access_key_id_setting="UPSTREAM_SECRET_A")
    assert AwsAuth(region="eu-west-1").access_key_id_setting is None  # default chain / role


def test_each_source_needs_its_target():
    with pytest.raises(ValidationError, match="bedrock"):
        AgentSpec(name="b", source="bedrock")
    with pytest.raises(ValidationError, match="interface"):
        AgentSpec(name="a", source="a2a")
    AgentSpec(name="v", source="vertex", vertex={"resource": "projects/p/locations/us-central1/reasoningEngines/1"})


async def test_agents_round_trip_through_the_kind_checked_repository():
    repo = Repository(MemoryDocumentStore(), Agent)
    await repo.create(agent(auth={"type": "secret", "setting": "UPSTREAM_SECRET_HELPER"}))
    got = await repo.get("p1", "helper")
    assert isinstance(got.spec.auth, SecretAuth) and got.spec.interfaces[0].protocol_version == "1.0"


async def test_memory_directory_applies_the_rules_and_the_project_boundary():
    d = MemoryAgentDirectory([agent("a"), agent("b", "draft"), agent("c", "deprecated"), agent("d", "suspended")])
    assert [a.id for a in await d.list_published("p1")] == ["a", "c"]
    assert (await d.resolve("p1", "a")).agent.id == "a"
    other = Principal(kind="virtual_key", subject="k", project_id="p2")
    with pytest.raises(NotFound):
        await d.resolve("p1", "a", other)
    with pytest.raises(AgentSuspended):
        await d.resolve("p1", "d")


def test_wire_objects_keep_a2a_names_and_unknown_fields():
    m = Message.model_validate({"messageId": "m1", "role": "ROLE_USER", "contextId": "c",
                                "parts": [{"text": "hi"}, {"data": {"x": 1}}], "extensions": ["e"]})
    assert m.text() == "hi" and m.dump()["extensions"] == ["e"] and m.dump()["contextId"] == "c"
    ev = StreamResponse.model_validate({"statusUpdate": {"taskId": "t", "contextId": "c",
                                                         "status": {"state": "TASK_STATE_WORKING"}}})
    assert ev.dump() == {"statusUpdate": {"taskId": "t", "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}}


def test_backend_protocol_is_structural():
    class Echo:
        async def send_message(self, agent, message, context):
            return message

        def stream_message(self, agent, message, context):
            raise NotImplementedError

    assert isinstance(Echo(), AgentBackend)


def test_the_lifecycle_states_are_the_shared_ones():
    from typing import get_args

    from shared.domain.lifecycle import Lifecycle as Shared
    from shared.pillars.agents.domain import Lifecycle

    assert set(get_args(Lifecycle)) == {s.value for s in Shared} == set(TRANSITIONS)


async def test_a_key_scoped_to_other_agents_is_refused():
    from shared.domain.base import Pillar
    from shared.errors import ResourceNotAllowed

    d = MemoryAgentDirectory([agent("a"), agent("b")])
    scoped = Principal(kind="virtual_key", subject="k", project_id="p1", scopes={Pillar.agents: frozenset({"b"})})
    with pytest.raises(ResourceNotAllowed):
        await d.resolve("p1", "a", scoped)
    assert (await d.resolve("p1", "b", scoped)).agent.id == "b"
