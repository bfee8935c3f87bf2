"""A/B routing on the models pipeline, in process: the real ModelsSpec and Pipeline with the ExperimentStep,
upstreams over httpx.MockTransport, memory registry and request log."""
from __future__ import annotations

import collections
import json
import time

import httpx
import orjson
import pytest

from shared.auth.principal import Principal
from shared.config import Settings
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota
from shared.experiments.book import ExperimentBook
from shared.experiments.domain import Experiment, ExperimentSpec
from shared.experiments.registry import ExperimentRegistry
from shared.flags.service import FlagService
from shared.pillars.models.cache_step import SCOPE_MODEL
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models.contracts import exchange
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Model, ModelSpec
from shared.pillars.models.experiment_step import HEADER, ExperimentStep
from shared.pillars.models.openai_http import OpenAIHttp
from shared.pillars.models.spec import ModelsSpec
from shared.pillars.models.tokens import TokenEstimator
from shared.pipeline import Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.unit.test_models_pipeline import NoToken

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


class Upstream:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (host, model sent)
        self.failing: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append((request.url.host.split(".")[0], body["model"]))
        if request.url.host.split(".")[0] in self.failing:
            return httpx.Response(500, json={"error": {"message": "down"}})
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "ok"}}],
                                         "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})


@pytest.fixture
async def gw():
    store = MemoryDocumentStore()
    models, experiments = Repository(store, Model), Repository(store, Experiment)
    await models.create(Model(id="m", project_id="p", spec=ModelSpec(name="m", tokenizer="gpt-4o", backends=[
        {"id": b, "kind": "openai_compatible", "endpoint": f"https://{b}.example/v1", "deployment": "gpt-4o"}
        for b in ("a", "b", "c")])))
    book = ExperimentBook(experiments, ttl=60, max_stale=60)
    registry = ExperimentRegistry(experiments, find_model=models.find, on_change=book.invalidate)
    registry.book = book  # type: ignore[attr-defined]  # for the step-only test
    upstream = Upstream()
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    enforcer = QuotaEnforcer(MemoryCounterStore())
    sink = MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    spec = ModelsSpec(catalog=ModelCatalog(models, ttl=60, max_stale=60), tokens=TokenEstimator(), enforcer=enforcer,
                      http=OpenAIHttp(http, UpstreamCredentials(Settings(), TokenCache(NoToken))))
    pipeline = Pipeline(spec, quotas=QuotaBook(Repository(store, Quota), ttl=60, max_stale=60), enforcer=enforcer,
                        breakers=Breakers(), usage=usage, steps=[ExperimentStep(book)],
                        flags=FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60,
                                          max_stale=60))

    async def call(key: str = "k", headers: dict | None = None, rid: str = "r"):
        who = Principal(kind="virtual_key", subject=key, project_id="p", key_id=key, key_prefix="sk-gw-x")
        return await pipeline.run(exchange("chat", orjson.dumps(CHAT), None, principal=who, request_id=rid,
                                           headers=headers or {}, started=time.perf_counter()))

    async def rows():
        await usage.flush()
        return sink.records

    yield call, upstream, rows, registry
    await usage.close()
    await http.aclose()


async def start(registry: ExperimentRegistry, **kw) -> None:
    spec = {"name": "exp", "model": "m", "variants": [
        {"id": "control", "weight": 1, "backends": ["a"]},
        {"id": "mini", "weight": 1, "backends": ["b", "c"], "deployment": "gpt-4o-mini"}], **kw}
    await registry.create("p", ExperimentSpec(**spec), "admin")
    await registry.transition("p", "exp", "start", "admin")


async def test_calls_split_by_weight_to_the_variants_pool_sticky_per_key(gw):
    call, upstream, rows, registry = gw
    await start(registry)
    seen = collections.Counter()
    for i in range(200):
        r = await call(f"key{i}")
        seen[r.headers[HEADER]] += 1
        host, sent = upstream.calls[-1]
        if r.headers[HEADER] == "control":
            assert (host, sent) == ("a", "gpt-4o")
        else:  # the variant's pool and its model version
            assert host in ("b", "c") and sent == "gpt-4o-mini"
    assert 70 < seen["control"] < 130, seen
    assert {(await call("key7")).headers[HEADER] for _ in range(10)} == {(await call("key7")).headers[HEADER]}
    log = await rows()
    assert all(x.attributes["experiment"] == "exp" and x.attributes["variant"] in ("control", "mini") for x in log)
    assert "experiment_paused" not in log[0].attributes


async def test_sticky_by_user_header_and_key_fallback(gw):
    call, upstream, rows, registry = gw
    await start(registry, sticky_by="user")
    by_user = {u: (await call("one-key", {"x-gateway-user": u})).headers[HEADER] for u in map(str, range(40))}
    assert set(by_user.values()) == {"control", "mini"}  # one key, many users: both variants
    again = {u: (await call("other-key", {"x-gateway-user": u})).headers[HEADER] for u in list(by_user)[:10]}
    assert again == {u: by_user[u] for u in again}  # the user decides, not the key
    no_header = {(await call("one-key")).headers[HEADER] for _ in range(5)}
    assert len(no_header) == 1  # without the header: sticky by key


async def test_paused_sends_everything_to_the_control_uncounted_and_stopped_routes_normally(gw):
    call, upstream, rows, registry = gw
    await start(registry)
    await registry.transition("p", "exp", "pause", "admin")
    assert {(await call(f"key{i}")).headers[HEADER] for i in range(30)} == {"control"}
    assert {h for h, _ in upstream.calls} == {"a"}
    assert all(x.attributes.get("experiment_paused") is True for x in await rows())
    await registry.transition("p", "exp", "stop", "admin")
    r = await call("key1")
    assert HEADER not in r.headers and upstream.calls[-1][1] == "gpt-4o"


async def test_failover_stays_inside_the_variants_pool(gw):
    call, upstream, rows, registry = gw
    await start(registry, variants=[{"id": "control", "weight": 1, "backends": ["a"]},
                                    {"id": "t", "weight": 0, "backends": ["b"]}])
    upstream.failing = {"a"}
    r = await call("k")
    assert r.status_code == 500 and r.headers[HEADER] == "control"
    assert {h for h, _ in upstream.calls} == {"a"}  # never b, c: they are not the control's


async def test_the_cache_is_keyed_per_variant(gw):
    _, _, _, registry = gw
    await start(registry)
    step = ExperimentStep(registry.book)
    model = Model(id="m", project_id="p", spec=ModelSpec(name="m", backends=[
        {"id": b, "kind": "openai_compatible", "endpoint": f"https://{b}.example/v1", "deployment": "d"}
        for b in ("a", "b", "c")]))
    scopes = set()
    for i in range(20):
        who = Principal(kind="virtual_key", subject="s", project_id="p", key_id=f"k{i}")
        x = exchange("chat", orjson.dumps(CHAT), None, principal=who, request_id="r", headers={}, started=0.0)
        x.entity = model
        await step.before(x)
        scopes.add(x.scratch[SCOPE_MODEL])
    assert scopes == {"m@exp/control", "m@exp/mini"}


async def test_a_variant_whose_backends_are_gone_is_served_by_the_whole_pool(gw, caplog):
    _, _, _, registry = gw
    await start(registry)
    model = Model(id="m", project_id="p", spec=ModelSpec(name="m", backends=[  # b and c removed after the start
        {"id": "a", "kind": "openai_compatible", "endpoint": "https://a.example/v1", "deployment": "d"}]))
    step = ExperimentStep(registry.book)
    pools = {}
    for i in range(20):
        who = Principal(kind="virtual_key", subject="s", project_id="p", key_id=f"k{i}")
        x = exchange("chat", orjson.dumps(CHAT), None, principal=who, request_id="r", headers={}, started=0.0)
        x.entity = model
        await step.before(x)
        pools[x.attributes["variant"]] = [(b.id, b.deployment) for b in x.targets]
    assert pools == {"control": [("a", "d")], "mini": [("a", "gpt-4o-mini")]}
    assert "names no backend" in caplog.text


async def test_variants_without_a_pool_use_all_backends(gw):
    call, upstream, rows, registry = gw
    await start(registry, variants=[{"id": "c", "weight": 1}, {"id": "t", "weight": 1, "deployment": "v2"}])
    answers = [await call(f"key{i}") for i in range(20)]
    assert all(r.status_code == 200 for r in answers)
    assert {r.headers[HEADER] for r in answers} == {"c", "t"}
    assert {m for _, m in upstream.calls} == {"gpt-4o", "v2"}
