"""Gateway overhead per models call in process: memory registry/counters/log, an httpx.MockTransport upstream (no
network, no Functions host). Runs on this tree (the pipeline) and on a tree from before it (ModelProxy), so the
two can be compared on one machine:

    .venv/bin/python bench/pipeline_overhead.py [--no-transport]   # this tree
    (cd <old worktree> && <venv>/bin/python <this>/bench/pipeline_overhead.py)
    .venv/bin/python bench/pipeline_overhead.py --wire lean|before   # a real loopback upstream (child process)
                                                                     # over the lean wire or httpx+httpcore
"""
import asyncio, gc, statistics, sys, time
import httpx, orjson
sys.path.insert(0, ".")
from shared.auth.principal import Principal
from shared.config import Settings
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.flags.service import FlagService
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
try:
    from shared.pillars.models.domain import Model, ModelSpec
    from shared.pillars.models.catalog import ModelCatalog
    from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
    from shared.pillars.models.openai_http import OpenAIHttp
    from shared.pillars.models.tokens import TokenEstimator
    from shared.pillars.models.spec import ModelsSpec
    from shared.pillars.models.contracts import parse
    from shared.pipeline import Exchange, Pipeline
    from shared.quotas.book import QuotaBook
    from shared.domain.base import Pillar
    NEW = True
except ImportError:
    from shared.domain.models import Model, ModelSpec
    from shared.catalog import ModelCatalog
    from shared.upstreams.credentials import TokenCache, UpstreamCredentials
    from shared.upstreams.openai_http import OpenAIHttp
    from shared.tokens import TokenEstimator
    from shared.proxy.models import ModelProxy
    from shared.proxy.quota_book import QuotaBook
    NEW = False

ANSWER = orjson.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
RAW = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello " * 40}], "max_tokens": 20})

def _wire():
    """--wire lean|before: the upstream is bench/upstream_wire.py's loopback server in a child process."""
    import subprocess
    from shared.egress import EgressPolicy
    from bench.upstream_wire import before_client
    from shared.upstreams.egress_transport import guarded_client
    child = subprocess.Popen([sys.executable, "-m", "bench.upstream_wire", "--serve"], stdout=subprocess.PIPE)
    port = int(child.stdout.readline())
    policy = EgressPolicy(allow_loopback=True)
    make = before_client if sys.argv[sys.argv.index("--wire") + 1] == "before" else guarded_client
    return child, f"http://127.0.0.1:{port}/v1", make(policy)

async def main():
    wire = _wire() if "--wire" in sys.argv else None
    store = MemoryDocumentStore()
    models, quotas = Repository(store, Model), Repository(store, Quota)
    await models.create(Model(id="m", project_id="p", spec=ModelSpec(name="m", tokenizer="gpt-4o", backends=[
        {"id": "a", "kind": "openai_compatible", "endpoint": wire[1] if wire else "https://up.example/v1", "deployment": "gpt-4o"}])))
    await quotas.create(Quota(id="key.k", project_id="p", scope="key", target="k", limits=QuotaLimits(requests_per_minute=10**9, tokens_per_minute=10**12)))
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})))
    if wire:
        http = wire[2]
    oa = OpenAIHttp(http, UpstreamCredentials(Settings(), TokenCache(lambda: None)))
    if "--no-transport" in sys.argv:  # only the gateway's own work: the upstream answer is prebuilt
        class Canned:
            async def send(self, backend, op, body, headers, *, stream):
                return httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})
        oa = Canned()
    catalog = ModelCatalog(models, ttl=3600, max_stale=3600)
    book = QuotaBook(quotas, ttl=3600, max_stale=3600)
    enforcer = QuotaEnforcer(MemoryCounterStore())
    flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=3600, max_stale=3600)
    usage = UsageLog(MemoryUsageSink(), flush_seconds=0.05)
    tokens = TokenEstimator()
    if NEW:
        pipe = Pipeline(ModelsSpec(catalog=catalog, http=oa, tokens=tokens, enforcer=enforcer), quotas=book, enforcer=enforcer,
                        breakers=Breakers(), usage=usage, flags=flags)
        async def one(i, p):
            body, name = parse("chat", RAW, None)
            return await pipe.run(Exchange(Pillar.models, "chat", p, f"r{i}", body, {}, time.perf_counter(), resource=name))
        p = Principal(kind="virtual_key", subject="k", project_id="p", key_id="k", key_prefix="sk-gw-x")
    else:
        proxy = ModelProxy(catalog=catalog, quota_book=book, enforcer=enforcer, http=oa, breakers=Breakers(), tokens=tokens, usage=usage, flags=flags)
        async def one(i, p):
            return await proxy.handle(principal=p, request_id=f"r{i}", op="chat", raw=RAW, headers={}, path_model=None, started=time.perf_counter())
        p = Principal(kind="virtual_key", subject="k", project_id="p", key_id="k", key_prefix="sk-gw-x")
    for i in range(500):
        r = await one(i, p)
    assert r.status_code == 200, r.body
    gc.collect(); gc.freeze()
    runs = []
    for rep in range(7):
        # CPU time of this process, not wall time: the figure holds on a machine shared with other work
        t = time.process_time()
        for i in range(2000):
            await one(i, p)
        runs.append((time.process_time() - t) / 2000 * 1e6)
        await usage.flush()
    if wire:
        wire[0].terminate()
    mode = f" (wire: {sys.argv[sys.argv.index('--wire') + 1]}, loopback upstream)" if wire else ""
    print(f"{'pipeline' if NEW else 'ModelProxy (before)'}{' (no transport)' if '--no-transport' in sys.argv else ''}{mode}: median {statistics.median(runs):.1f} µs CPU/call, "
          f"min {min(runs):.1f} (7×2000 calls, incl. MockTransport and the tiktoken estimate)")
    await usage.close()
asyncio.run(main())
