"""Registry, cards, sync engine and connections, in process (memory store, httpx.MockTransport, fake catalogs)."""
from __future__ import annotations

import json

import httpx
import pytest

from shared.domain.projects import Project
from shared.egress import EgressPolicy
from shared.errors import AgentSuspended, DependencyUnavailable, InvalidTransition, NotFound, ValidationFailed
from shared.pillars.agents.cards import parse_card
from shared.pillars.agents.clouds.bedrock import pick_alias
from shared.pillars.agents.directory import RepositoryAgentDirectory
from shared.pillars.agents.domain import Agent, AgentSpec, LifecycleEvent, SyncError, SyncRun
from shared.pillars.agents.policy import AgentsPolicy, policy_reader
from shared.pillars.agents.registry import AgentRegistry, RegistryRepos
from shared.pillars.agents.sync.connections import parse_connections
from shared.pillars.agents.sync.engine import CloudAgent, Listing, SyncEngine
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

V1_CARD = {
    "name": "Travel", "description": "Plans trips", "version": "2.1.0",
    "supportedInterfaces": [
        {"url": "https://travel.example/a2a/jsonrpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
        {"url": "https://travel.example/a2a/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
        {"url": "https://travel.example/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"}],
    "securitySchemes": {"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}},
    "skills": [{"id": "flights", "name": "Flights", "description": "Finds flights", "tags": ["travel"],
                "inputModes": ["text/plain"]}],
}
V03_CARD = {
    "protocolVersion": "0.3.0", "name": "Legacy", "description": "Old agent", "version": "1",
    "url": "https://legacy.example/a2a", "preferredTransport": "JSONRPC",
    "additionalInterfaces": [{"url": "https://legacy.example/rest", "transport": "HTTP+JSON"}],
    "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
    "skills": [{"id": "echo", "name": "Echo", "description": "", "tags": []}],
}


def test_v1_card_interfaces_skills_and_schemes():
    c = parse_card(V1_CARD)
    assert c.version == "1.0" and [i.binding for i in c.interfaces] == ["jsonrpc", "http_json"]  # gRPC skipped
    assert c.skills[0].input_modes == ["text/plain"] and c.schemes[0].type == "http"


def test_v03_card_interfaces_and_schemes():
    c = parse_card(V03_CARD)
    assert c.version == "0.3" and {i.protocol_version for i in c.interfaces} == {"0.3"}
    assert [str(i.url) for i in c.interfaces] == ["https://legacy.example/a2a", "https://legacy.example/rest"]
    assert c.schemes[0].type == "apiKey" and c.schemes[0].scheme == {"in": "header", "name": "X-API-Key"}


@pytest.mark.parametrize("card,field", [
    ([], "card.<root>"), ({"name": ""}, "card.name"), ({"name": "x"}, "card.supportedInterfaces"),
    ({**V1_CARD, "supportedInterfaces": [{"url": "ftp://x", "protocolBinding": "JSONRPC"}]},
     "card.supportedInterfaces.0.url"),
    ({**V1_CARD, "skills": [{"id": "", "name": "n"}]}, "card.skills.0"),
    ({**V03_CARD, "securitySchemes": {"k": {"type": "magic"}}}, "card.securitySchemes.k")])
def test_invalid_cards_are_422_naming_the_field(card, field):
    with pytest.raises(ValidationFailed) as err:
        parse_card(card)
    assert err.value.details[0]["field"] == field


def repos(store=None) -> RegistryRepos:
    store = store or MemoryDocumentStore()
    return RegistryRepos(Repository(store, Agent), Repository(store, LifecycleEvent), Repository(store, SyncRun))


def card_server(card: dict, status: int = 200) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(
        lambda req: httpx.Response(status, json=card)))


SPEC = AgentSpec(name="Helper", interfaces=[{"url": "https://helper.example/a2a"}])


async def test_register_by_card_keeps_admin_fields_and_records_the_audit_line():
    r = AgentRegistry(repos(), EgressPolicy(), card_server(V1_CARD))
    agent = await r.register_from_card("p", "travel", "https://travel.example/.well-known/agent-card.json",
                                       "admin_key:a", {"owner": "team-travel", "auth": None})
    assert agent.lifecycle == "draft" and agent.spec.owner == "team-travel" and agent.card["name"] == "Travel"
    [event] = (await r.history("p", "travel")).items
    assert (event.action, event.to_state, event.actor) == ("registered", "draft", "admin_key:a")


async def test_a_card_behind_a_private_address_is_refused_by_the_egress_policy():
    r = AgentRegistry(repos(), EgressPolicy(), card_server(V1_CARD))
    with pytest.raises(ValidationFailed) as err:
        await r.register_from_card("p", "x", "http://10.0.0.5/card.json", "a")
    assert err.value.code == "egress_denied"


async def test_an_unreachable_or_failing_card_is_422():
    r = AgentRegistry(repos(), EgressPolicy(), card_server({}, status=500))
    with pytest.raises(ValidationFailed) as err:
        await r.register_from_card("p", "x", "https://travel.example/card.json", "a")
    assert err.value.code == "card_unavailable"


async def test_transitions_audit_replacement_and_hooks():
    calls = []

    async def hook(agent, before, after):
        calls.append((before, after))
        return "source unreachable" if after == "suspended" else None

    r = AgentRegistry(repos(), EgressPolicy(), card_server({}), hooks=[hook])
    await r.register("p", "old", SPEC, "a")
    await r.register("p", "new", SPEC, "a")
    with pytest.raises(InvalidTransition):
        await r.transition("p", "old", "deprecated", "a")  # draft cannot be deprecated
    await r.transition("p", "new", "published", "a")
    await r.transition("p", "old", "published", "a")
    with pytest.raises(ValidationFailed):
        await r.transition("p", "old", "deprecated", "a", replacement="old")  # not itself
    old, _ = await r.transition("p", "old", "deprecated", "a", reason="v2 is out", replacement="new")
    assert old.spec.replacement == "new"
    old, warnings = await r.transition("p", "old", "suspended", "oncall", reason="incident 42")
    assert old.suspended_from == "deprecated" and warnings == ["source unreachable"]
    trail = [(e.action, e.from_state, e.to_state, e.actor, e.reason) for e in
             sorted((await r.history("p", "old")).items, key=lambda e: e.at)]
    assert trail[-2] == ("transition", "deprecated", "suspended", "oncall", "incident 42")
    assert trail[-1][4].startswith("source not updated")
    assert calls[-1] == ("deprecated", "suspended")


async def test_update_records_field_changes():
    r = AgentRegistry(repos(), EgressPolicy(), card_server({}))
    await r.register("p", "h", SPEC, "a")
    _, changes = await r.update("p", "h", SPEC.model_copy(update={"description": "now documented"}), "a")
    assert [(c.field, c.before, c.after) for c in changes] == [("spec.description", "", "now documented")]


async def test_directory_caches_and_serves_stale_while_the_registry_is_down():
    store = MemoryDocumentStore()
    rp = repos(store)
    await rp.agents.create(Agent(id="a", project_id="p", spec=SPEC, lifecycle="published"))
    now = [0.0]
    d = RepositoryAgentDirectory(rp.agents, ttl=5, max_stale=60, clock=lambda: now[0])
    assert (await d.resolve("p", "a")).agent.id == "a"
    await rp.agents.update("p", "a", lambda a: setattr(a, "lifecycle", "suspended"))
    assert (await d.resolve("p", "a")).agent.lifecycle == "published"  # within the TTL
    now[0] = 6
    with pytest.raises(AgentSuspended):
        await d.resolve("p", "a")

    async def down(*a, **k):
        raise DependencyUnavailable("cosmos down")

    rp.agents.find = down  # type: ignore[method-assign]
    now[0] = 12
    with pytest.raises(AgentSuspended):
        await d.resolve("p", "a")  # fail-static: the last answer
    now[0] = 100
    with pytest.raises(DependencyUnavailable):
        await d.resolve("p", "a")


# ---- sync engine


class Catalog:
    cloud = "bedrock"

    def __init__(self, listing: Listing | Exception) -> None:
        self.listing = listing

    async def list_agents(self) -> Listing:
        if isinstance(self.listing, Exception):
            raise self.listing
        return self.listing


class Conn:
    name, project, cloud = "aws", "p", "bedrock"


def cloud_agent(cid: str, name: str, **extra) -> CloudAgent:
    spec = AgentSpec(name=name, source="bedrock", bedrock={"agent_id": cid, "alias_id": "ALIAS00001",
                                                           "region": "us-east-1"})
    return CloudAgent(cloud_id=cid, spec=spec, upstream_status="PREPARED", **extra)


async def engine_with(policy: bool = False) -> tuple[SyncEngine, AgentRegistry]:
    store = MemoryDocumentStore()
    projects = Repository(store, Project)
    await projects.create(Project(id="p", name="P"))
    policies = Repository(store, AgentsPolicy)
    if policy:
        await policies.create(AgentsPolicy(project_id="p", publish_synced=True))
    r = AgentRegistry(repos(store), EgressPolicy(), card_server({}))
    return SyncEngine(r, policy_reader(policies, lambda pid: projects.get(pid, pid))), r


async def test_engine_upserts_idempotently_keeps_admin_fields_and_retires_only_on_a_complete_listing():
    engine, r = await engine_with()
    run = await engine.run(Conn(), Catalog(Listing([cloud_agent("AAA", "a"), cloud_agent("BBB", "b")])))
    assert (run.status, run.counts.created) == ("succeeded", 2)
    await r.update("p", "aws-aaa", (await r.repos.agents.get("p", "aws-aaa")).spec.model_copy(
        update={"owner": "team-a"}), "admin")
    run = await engine.run(Conn(), Catalog(Listing([cloud_agent("AAA", "a2"), cloud_agent("BBB", "b")])))
    assert (run.counts.updated, run.counts.unchanged) == (1, 1)
    a = await r.repos.agents.get("p", "aws-aaa")
    assert a.spec.name == "a2" and a.spec.owner == "team-a"  # the admin's owner survives the sync
    run = await engine.run(Conn(), Catalog(Listing([cloud_agent("AAA", "a2")], complete=False)))
    assert run.counts.retired == 0  # a cut-short listing retires nothing
    run = await engine.run(Conn(), Catalog(Listing([cloud_agent("AAA", "a2")])))
    assert run.counts.retired == 1 and (await r.repos.agents.get("p", "aws-bbb")).lifecycle == "retired"
    run = await engine.run(Conn(), Catalog(Listing([cloud_agent("AAA", "a2"), cloud_agent("BBB", "b")])))
    assert [e.code for e in run.errors] == ["retired_locally"] and run.status == "partial"


async def test_engine_records_a_failed_listing_and_never_raises():
    engine, r = await engine_with()
    run = await engine.run(Conn(), Catalog(RuntimeError("cloud down")), trigger="timer", past_due=True)
    assert run.status == "failed" and run.past_due and run.errors[0].message == "cloud down"
    assert (await r.repos.runs.get("p", run.id)).status == "failed"


async def test_engine_publishes_when_the_policy_says_so_and_reports_listing_errors():
    engine, r = await engine_with(policy=True)
    listing = Listing([cloud_agent("CCC", "c")], errors=[SyncError(code="x", message="one agent unreadable")])
    run = await engine.run(Conn(), Catalog(listing))
    assert run.status == "partial" and (await r.repos.agents.get("p", "aws-ccc")).lifecycle == "published"


async def test_engine_fails_the_run_for_a_missing_project():
    engine, _ = await engine_with()

    class Elsewhere(Conn):
        project = "nope"

    run = await engine.run(Elsewhere(), Catalog(Listing([])))
    assert run.status == "failed" and run.errors[0].code == "not_found"


def test_connections_are_validated_one_by_one():
    raw = json.dumps([
        {"name": "aws", "cloud": "bedrock", "project": "p1", "region": "us-east-1"},
        {"name": "bad", "cloud": "bedrock", "project": "p1", "region": "us-east-1",
         "access_key_id_setting": "GATEWAY_ADMIN_KEY"},
        {"name": "gcp", "cloud": "vertex", "project": "p1", "gcp_project": "acme-prod", "location": "europe-west4",
         "enabled": False},
        {"name": "aws", "cloud": "bedrock", "project": "p1", "region": "us-east-1"}])
    good, bad = parse_connections(raw)
    assert [c.name for c in good] == ["aws", "gcp"] and not good[1].enabled
    assert [(p.name, "GATEWAY_ADMIN_KEY" in p.reason) for p in bad] == [("bad", False), ("aws", False)]
    assert good[1].base_url == "https://europe-west4-aiplatform.googleapis.com"
    assert parse_connections("{not json")[1][0].reason.endswith("not JSON")


def test_the_invoked_alias_is_the_newest_prepared_one_never_the_test_alias():
    aliases = [{"id": "TSTALIASID", "status": "PREPARED", "updated": "2026-12-01"},
               {"id": "OLD0000001", "status": "PREPARED", "updated": "2026-10-01"},
               {"id": "NEW0000001", "status": "PREPARED", "updated": "2026-11-01"},
               {"id": "BAD0000001", "status": "FAILED", "updated": "2026-11-30"}]
    assert pick_alias(aliases) == "NEW0000001" and pick_alias(aliases[:1]) is None


async def test_a_draft_is_not_found_through_the_memory_directory_either():
    from shared.pillars.agents.domain import MemoryAgentDirectory

    with pytest.raises(NotFound):
        await MemoryAgentDirectory([Agent(id="d", project_id="p", spec=SPEC)]).resolve("p", "d")


async def test_upstream_credentials_come_from_the_agents_auth_only(monkeypatch):
    from shared.config import Settings
    from shared.pillars.agents.clouds.google_token import GoogleTokens
    from shared.pillars.agents.credentials import AgentCredentials

    class Entra:
        async def token(self, scope: str) -> str:
            return f"entra-for-{scope}"

    class Creds:
        token, expiry, _token_uri = "google-token", None, None

        def refresh(self, request) -> None:
            pass

    monkeypatch.setenv("UPSTREAM_SECRET_HELPER", "s3cret")
    settings = Settings()
    creds = AgentCredentials(settings, Entra(), GoogleTokens(settings, EgressPolicy(), factory=lambda s: Creds()))

    def with_auth(auth: dict) -> Agent:
        return Agent(id="a", project_id="p", spec=SPEC.model_copy(update={"auth": AgentSpec(
            name="x", interfaces=SPEC.interfaces, auth=auth).auth}))

    assert await creds.headers(with_auth({"type": "none"})) == {}
    assert await creds.headers(with_auth({"type": "secret", "setting": "UPSTREAM_SECRET_HELPER",
                                          "header": "X-Api-Key", "prefix": ""})) == {"x-api-key": "s3cret"}
    assert await creds.headers(with_auth({"type": "managed_identity", "scope": "api://a/.default"})) == {
        "authorization": "Bearer entra-for-api://a/.default"}
    assert await creds.headers(with_auth({"type": "google", "service_account_setting": "UPSTREAM_SECRET_SA"})) == {
        "authorization": "Bearer google-token"}
    with pytest.raises(DependencyUnavailable):
        await creds.headers(with_auth({"type": "secret", "setting": "UPSTREAM_SECRET_MISSING"}))


async def test_an_unreadable_vertex_engine_is_reported_and_blocks_retirement():
    from shared.pillars.agents.clouds.vertex import VertexCatalog
    from shared.pillars.agents.sync.connections import VertexConnection

    page = {"reasoningEngines": [
        {"name": "projects/acme-prod/locations/us-central1/reasoningEngines/1", "displayName": "ok"},
        {"name": "not/a/resource/name"}]}
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda req: httpx.Response(200, json=page)))
    conn = VertexConnection(name="gcp", project="pp", gcp_project="acme-prod", location="us-central1")

    async def token() -> str:
        return "t"

    listing = await VertexCatalog(conn, http, token).list_agents()
    assert [a.spec.name for a in listing.agents] == ["ok"] and not listing.complete
    assert listing.errors[0].code == "unmappable_engine"
