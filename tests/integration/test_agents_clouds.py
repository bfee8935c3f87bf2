"""Bedrock and Vertex, for real over HTTP on 127.0.0.1: moto in server mode (+ a local front for the operations it
lacks: agent aliases and InvokeAgent's event stream), a local Vertex Agent Engine with its OAuth2 token endpoint.
The sync (paging, change detection, retirement, degraded paths, one cloud failing), the suspension mirrored at
the source, and both clouds as A2A AgentBackends."""
from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.server import ThreadedMotoServer

from shared.config import Settings
from shared.domain.projects import Project
from shared.egress import EgressPolicy
from shared.pillars.agents.domain import InvocationContext
from shared.pillars.agents.pillar import AgentsPillar
from shared.pillars.agents.policy import AgentsPolicy
from shared.pillars.agents.wire import Message, Part
from shared.routing.failover import UpstreamUnavailable
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.upstreams.egress_transport import guarded_client
from tests.support.fake_bedrock import FakeBedrock
from tests.support.fake_vertex import FakeVertex, engine

PARENT = "projects/acme-prod/locations/us-central1"
ROLE = "arn:aws:iam::123456789012:role/bedrock-agent"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bedrock(moto_url: str) -> Iterator[FakeBedrock]:
    fake = FakeBedrock(moto_url).start()
    yield fake
    fake.stop()


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    fake = FakeVertex().start()
    yield fake
    fake.stop()


def service_account(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "acme-prod", "private_key_id": "k1",
                       "private_key": pem, "client_email": "sync@acme-prod.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": token_uri})


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    monkeypatch.setenv("UPSTREAM_SECRET_AWS_KEY", "AKIAFAKEFAKEFAKE")
    monkeypatch.setenv("UPSTREAM_SECRET_AWS_SECRET", "fake-secret")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return moto_url


def moto_client(url: str):
    return boto3.client("bedrock-agent", region_name="us-east-1", endpoint_url=url,
                        aws_access_key_id="AKIAFAKEFAKEFAKE", aws_secret_access_key="fake-secret")


def create_agents(moto_url: str, names: list[str]) -> list[str]:
    client = moto_client(moto_url)
    return [client.create_agent(agentName=n, agentResourceRoleArn=ROLE, foundationModel="anthropic.claude-v2",
                                description=f"{n} agent")["agent"]["agentId"] for n in names]


async def build_pillar(monkeypatch: pytest.MonkeyPatch, connections: list[dict], **extra) -> AgentsPillar:
    monkeypatch.setenv("AGENTS_SYNC_CONNECTIONS", json.dumps(connections))
    store = MemoryDocumentStore()
    projects = Repository(store, Project)
    await projects.create(Project(id="acme", name="Acme"))
    egress = EgressPolicy(allow_loopback=True)
    return AgentsPillar(Settings(), store, egress, guarded_client(egress),
                        project_exists=lambda pid: projects.get(pid, pid), **extra)


def bedrock_conn(url: str, **extra) -> dict:
    return {"name": "aws", "cloud": "bedrock", "project": "acme", "region": "us-east-1", "endpoint_url": url,
            "runtime_endpoint_url": url, "access_key_id_setting": "UPSTREAM_SECRET_AWS_KEY",
            "secret_access_key_setting": "UPSTREAM_SECRET_AWS_SECRET", "page_size": 2, **extra}


def vertex_conn(url: str, **extra) -> dict:
    return {"name": "gcp", "cloud": "vertex", "project": "acme", "gcp_project": "acme-prod",
            "location": "us-central1", "api_endpoint": url, "service_account_setting": "UPSTREAM_SECRET_GCP_SA",
            "page_size": 2, **extra}


async def test_bedrock_sync_pages_maps_detects_changes_and_retires(monkeypatch, aws_env, bedrock):
    ids = create_agents(aws_env, ["triage", "billing", "search"])
    for i, aid in enumerate(ids):
        bedrock.add_alias(aid, "TSTALIASID", "AgentTestAlias", "DRAFT")
        bedrock.add_alias(aid, f"LIVE{i:06d}", "live", "1")
    pillar = await build_pillar(monkeypatch, [bedrock_conn(bedrock.url)])

    [run] = await pillar.sync("bedrock")
    assert (run.status, run.counts.created, run.errors) == ("succeeded", 3, [])
    agents = {a.spec.name: a for a in (await pillar.repos.agents.list("acme")).items}
    triage = agents["triage"]
    assert triage.lifecycle == "draft" and triage.id == f"aws-{ids[0].lower()}"
    assert triage.spec.bedrock.alias_id == "LIVE000000"  # never the draft test alias
    assert triage.origin.details["foundation_model"] == "anthropic.claude-v2"
    assert [a["id"] for a in triage.origin.details["aliases"]] == ["TSTALIASID", "LIVE000000"]

    [again] = await pillar.sync("bedrock")
    assert (again.counts.created, again.counts.updated, again.counts.unchanged) == (0, 0, 3)  # idempotent

    bedrock.aliases[ids[1]][1]["routingConfiguration"] = [{"agentVersion": "2"}]  # a change upstream
    moto_client(aws_env).delete_agent(agentId=ids[2], skipResourceInUseCheck=True)  # gone upstream
    [third] = await pillar.sync("bedrock")
    assert (third.counts.updated, third.counts.retired, third.counts.unchanged) == (1, 1, 1)
    search = await pillar.repos.agents.get("acme", f"aws-{ids[2].lower()}")
    assert search.lifecycle == "retired"  # kept, with its history
    history = (await pillar.registry.history("acme", f"aws-{ids[1].lower()}")).items
    synced = [e for e in history if e.action == "synced"]
    assert synced and any(c.field.startswith("origin.details.aliases") for c in synced[0].changes)
    runs = (await pillar.repos.runs.list("acme")).items
    assert len(runs) == 3 and all(r.duration_ms > 0 for r in runs)


async def test_bedrock_degraded_aliases_leave_existing_agents_alone(monkeypatch, aws_env, bedrock):
    [aid] = create_agents(aws_env, ["degraded"])
    bedrock.add_alias(aid, "LIVE000001", "live")
    pillar = await build_pillar(monkeypatch, [bedrock_conn(bedrock.url)])
    await pillar.sync("bedrock")
    bedrock.fail_aliases = True
    [run] = await pillar.sync("bedrock")
    assert run.status == "partial" and {e.code for e in run.errors} == {"aliases_unavailable"}
    agent = await pillar.repos.agents.get("acme", f"aws-{aid.lower()}")
    assert agent.spec.bedrock.alias_id == "LIVE000001" and agent.lifecycle == "draft"  # untouched


async def test_moto_alone_lacks_aliases_and_the_sync_degrades_to_partial(monkeypatch, aws_env, bedrock):
    [aid] = create_agents(aws_env, ["motoonly"])
    pillar = await build_pillar(monkeypatch, [bedrock_conn(aws_env)])  # straight at moto: no alias operations
    [run] = await pillar.sync("bedrock")
    assert run.status == "partial"
    assert any(e.code == "aliases_unavailable" for e in run.errors)
    agent = await pillar.repos.agents.get("acme", f"aws-{aid.lower()}")
    assert agent.spec.bedrock.alias_id is None and agent.origin.details["aliases"] == "unknown"


async def test_synced_agents_are_published_when_the_project_policy_says_so(monkeypatch, aws_env, bedrock):
    [aid] = create_agents(aws_env, ["autopub"])
    pillar = await build_pillar(monkeypatch, [bedrock_conn(bedrock.url)])
    await pillar.policies.create(AgentsPolicy(project_id="acme", publish_synced=True))
    await pillar.sync("bedrock")
    assert (await pillar.repos.agents.get("acme", f"aws-{aid.lower()}")).lifecycle == "published"


async def test_vertex_sync_pages_with_a_real_service_account_token_and_a_failing_cloud_never_blocks_the_other(
        monkeypatch, aws_env, bedrock, vertex):
    monkeypatch.setenv("UPSTREAM_SECRET_GCP_SA", service_account(f"{vertex.url}/token"))
    vertex.engines[PARENT] = [engine(PARENT, "101", "researcher"), engine(PARENT, "102", "writer"),
                              engine(PARENT, "103", "a2a-hosted", a2a=True)]
    create_agents(aws_env, ["alongside"])
    pillar = await build_pillar(monkeypatch, [bedrock_conn(bedrock.url), vertex_conn(vertex.url)])

    [run] = await pillar.sync("vertex")
    assert (run.status, run.counts.created) == ("succeeded", 3)
    assert vertex.token_requests == 1  # one JWT-bearer exchange, then cached
    hosted = await pillar.repos.agents.get("acme", "gcp-103")
    assert hosted.spec.interfaces and hosted.spec.interfaces[0].binding == "http_json"  # an A2A agent on Vertex
    assert (await pillar.repos.agents.get("acme", "gcp-101")).origin.details["labels"] == {"team": "search"}

    for status in (429, 503):
        vertex.fail_next = [status]
        vertex_run, bedrock_run = [*(await pillar.sync("vertex")), *(await pillar.sync("bedrock"))]
        assert vertex_run.status == "failed" and str(status) in vertex_run.errors[0].message
        assert vertex_run.errors[0].code in ("upstream_throttled", "upstream_error")
        assert vertex_run.counts.retired == 0  # a failed listing retires nothing
        assert bedrock_run.status in ("succeeded", "partial")
    assert (await pillar.repos.agents.get("acme", "gcp-102")).lifecycle == "draft"

    vertex.engines[PARENT] = vertex.engines[PARENT][:2]
    [run] = await pillar.sync("vertex")
    assert run.counts.retired == 1 and (await pillar.repos.agents.get("acme", "gcp-103")).lifecycle == "retired"


async def test_vertex_auth_failures_are_recorded(monkeypatch, vertex):
    monkeypatch.setenv("UPSTREAM_SECRET_GCP_SA", service_account(f"{vertex.url}/token"))
    vertex.deny_token = True
    pillar = await build_pillar(monkeypatch, [vertex_conn(vertex.url)])
    [run] = await pillar.sync("vertex")
    assert run.status == "failed" and run.errors[0].code == "upstream_credential_unavailable"

    class WrongToken:  # an injected credential whose token the service does not accept: 403
        token, expiry, _token_uri = "ya29.someone-else", None, None

        def refresh(self, request) -> None:
            pass

    pillar = await build_pillar(monkeypatch, [vertex_conn(vertex.url)], google_credentials=lambda s: WrongToken())
    [run] = await pillar.sync("vertex")
    assert run.status == "failed" and run.errors[0].code == "upstream_forbidden"


def ask(text: str, context_id: str | None = None, **data) -> Message:
    parts = [Part(data=data)] if data else [Part(text=text)]
    return Message(message_id="m1", role="ROLE_USER", parts=parts, context_id=context_id)


async def test_bedrock_backend_invoke_agent_stream_return_control_and_suspension_at_source(
        monkeypatch, aws_env, bedrock):
    [aid] = create_agents(aws_env, ["concierge"])
    bedrock.add_alias(aid, "LIVE000009", "live")
    pillar = await build_pillar(monkeypatch, [bedrock_conn(bedrock.url, suspend_at_source=True)])
    await pillar.sync("bedrock")
    local = f"aws-{aid.lower()}"
    agent, _ = await pillar.registry.transition("acme", local, "published", "admin")
    backend = pillar.backend_for(agent, a2a=None)  # type: ignore[arg-type]

    ctx = InvocationContext(project_id="acme")
    task = await backend.send_message(agent, ask("hello there"), ctx)
    assert task.status.state == "TASK_STATE_COMPLETED"
    assert task.artifacts[0].parts[0].text == "You said: hello there (from Bedrock)"
    assert ctx.usage == {"input_tokens": 11, "output_tokens": 7}
    assert bedrock.invocations[-1]["session"] == task.context_id  # sessionId ↔ contextId

    events = [e.dump() async for e in backend.stream_message(agent, ask("hi", context_id="ctx-42"), ctx)]
    assert events[0]["task"]["status"]["state"] == "TASK_STATE_WORKING"
    chunks = [e["artifactUpdate"]["artifact"]["parts"][0]["text"] for e in events if "artifactUpdate" in e]
    assert "".join(chunks) == "You said: hi (from Bedrock)" and events[-1]["statusUpdate"]["contextId"] == "ctx-42"
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"

    task = await backend.send_message(agent, ask("what is the weather?"), ctx)
    assert task.status.state == "TASK_STATE_INPUT_REQUIRED"
    control = task.status.message.parts[0].data["returnControl"]
    assert control["invocationId"] == "inv-1"
    answer = ask("", context_id=task.context_id, invocationId="inv-1", returnControlInvocationResults=[
        {"functionResult": {"actionGroup": "weather", "function": "get_weather",
                            "responseBody": {"TEXT": {"body": "sunny"}}}}])
    done = await backend.send_message(agent, answer, ctx)
    assert done.artifacts[0].parts[0].text == "It is sunny in Paris."
    assert bedrock.invocations[-1]["sessionState"]["invocationId"] == "inv-1"

    events = [e.dump() async for e in backend.stream_message(agent, ask("boom"), ctx)]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_FAILED"
    with pytest.raises(UpstreamUnavailable):
        await backend.send_message(agent, ask("boom"), ctx)

    agent, warnings = await pillar.registry.transition("acme", local, "suspended", "admin", reason="incident")
    assert warnings == [] and bedrock.alias(aid, "LIVE000009")["aliasInvocationState"] == "REJECT_INVOCATIONS"
    with pytest.raises(UpstreamUnavailable):
        await backend.send_message(agent, ask("hello"), ctx)  # stopped at the source too
    await pillar.registry.transition("acme", local, "published", "admin", reason="resolved")
    assert bedrock.alias(aid, "LIVE000009")["aliasInvocationState"] == "ACCEPT_INVOCATIONS"


async def test_vertex_backend_query_and_stream_query(monkeypatch, vertex):
    monkeypatch.setenv("UPSTREAM_SECRET_GCP_SA", service_account(f"{vertex.url}/token"))
    vertex.engines[PARENT] = [engine(PARENT, "201", "planner")]
    pillar = await build_pillar(monkeypatch, [vertex_conn(vertex.url)])
    await pillar.sync("vertex")
    agent = await pillar.repos.agents.get("acme", "gcp-201")
    backend = pillar.backend_for(agent, a2a=None)  # type: ignore[arg-type]
    ctx = InvocationContext(project_id="acme")
    task = await backend.send_message(agent, ask("plan a trip"), ctx)
    assert task.artifacts[0].parts[0].text == "Vertex heard: plan a trip"
    assert vertex.queries[-1]["classMethod"] == "query"
    events = [e.dump() async for e in backend.stream_message(agent, ask("go", context_id="c-1"), ctx)]
    texts = [e["artifactUpdate"]["artifact"]["parts"][0]["text"] for e in events if "artifactUpdate" in e]
    assert texts == ["Vertex streams: go", " (done)"]
    assert vertex.queries[-1]["input"]["session_id"] == "c-1"
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
