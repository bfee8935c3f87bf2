"""A/B experiments, control side and results: lifecycle with audit, checks against the model, one active
experiment per model, re-validation on read, feedback ownership, and results checked against hand-computed values
from request-log rows (the real query code over the in-memory table)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.errors import Conflict, InvalidStoredDocument, InvalidTransition, NotFound, ValidationFailed
from shared.experiments.book import ExperimentBook
from shared.experiments.domain import Experiment, ExperimentSpec
from shared.experiments.feedback import Feedback, FeedbackIn, FeedbackService, feedback_id
from shared.experiments.registry import ExperimentRegistry
from shared.experiments.report import compute
from shared.monitoring.memtable import MemoryTable
from shared.pillars.models.domain import Model, ModelSpec
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import UsageRecord

BACKENDS = [{"id": b, "kind": "openai_compatible", "endpoint": f"https://{b}.example/v1", "deployment": "gpt-4o"}
            for b in ("a", "b")]


def spec(name: str = "exp", **kw) -> ExperimentSpec:
    return ExperimentSpec(**{"name": name, "model": "m", "variants": [
        {"id": "control", "weight": 50, "backends": ["a"]}, {"id": "treat", "weight": 50, "backends": ["b"]}],
        **kw})


@pytest.fixture
async def env():
    store = MemoryDocumentStore()
    models, repo = Repository(store, Model), Repository(store, Experiment)
    await models.create(Model(id="m", project_id="p", spec=ModelSpec(name="m", backends=BACKENDS)))
    changed: list[str] = []
    reg = ExperimentRegistry(repo, find_model=models.find, on_change=changed.append)
    return reg, repo, store, changed


async def test_lifecycle_moves_only_along_valid_transitions_and_is_audited(env):
    reg, _, _, changed = env
    e = await reg.create("p", spec(), "admin_key:alice")
    assert (e.status, e.started_at, [h.action for h in e.history]) == ("draft", None, ["create"])
    with pytest.raises(InvalidTransition):
        await reg.transition("p", "exp", "pause", "admin_key:alice")  # draft → paused is not a transition
    e = await reg.transition("p", "exp", "start", "entra:bob")
    first_start = e.started_at
    assert e.status == "running" and first_start is not None
    e = await reg.transition("p", "exp", "pause", "entra:bob")
    e = await reg.transition("p", "exp", "start", "entra:carol")  # resume keeps the first start
    assert e.status == "running" and e.started_at == first_start
    e = await reg.transition("p", "exp", "stop", "entra:carol")
    assert e.status == "stopped" and e.stopped_at is not None
    assert [(h.action, h.from_status, h.to_status, h.by) for h in e.history] == [
        ("create", None, "draft", "admin_key:alice"), ("start", "draft", "running", "entra:bob"),
        ("pause", "running", "paused", "entra:bob"), ("start", "paused", "running", "entra:carol"),
        ("stop", "running", "stopped", "entra:carol")]
    assert all(h.at.tzinfo is not None for h in e.history)
    for action in ("start", "pause", "stop"):
        with pytest.raises(InvalidTransition):  # stopped is final
            await reg.transition("p", "exp", action, "x")
    with pytest.raises(InvalidTransition):
        await reg.update("p", "exp", spec(), "x", None)  # … and read-only
    assert changed == ["p"] * 5  # every write dropped the data plane's cached view


async def test_variants_change_only_while_nothing_is_measured(env):
    reg, *_ = env
    await reg.create("p", spec(), "a")
    await reg.update("p", "exp", spec(variants=[{"id": "control", "weight": 90}, {"id": "t", "weight": 10}]), "a",
                     None)
    await reg.transition("p", "exp", "start", "a")
    with pytest.raises(InvalidTransition):
        await reg.update("p", "exp", spec(), "a", None)  # running: a reweight would mix two splits
    await reg.transition("p", "exp", "pause", "a")
    saved = await reg.update("p", "exp", spec(), "a", None)
    assert [v.id for v in saved.spec.variants] == ["control", "treat"] and saved.history[-1].action == "update"
    with pytest.raises(ValidationFailed):
        await reg.update("p", "exp", spec(name="other"), "a", None)  # the name is the URL's
    await reg.transition("p", "exp", "start", "a")
    with pytest.raises(Conflict) as running:
        await reg.delete("p", "exp", None)  # running: pause or stop first
    assert running.value.code == "experiment_running"
    await reg.transition("p", "exp", "stop", "a")
    await reg.delete("p", "exp", None)
    with pytest.raises(NotFound):
        await reg.get("p", "exp")


async def test_model_and_backends_are_checked_and_one_experiment_per_model_is_active(env):
    reg, *_ = env
    with pytest.raises(ValidationFailed) as bad:
        await reg.create("p", spec(model="nope"), "a")
    assert bad.value.details[0]["field"] == "model"
    with pytest.raises(ValidationFailed) as bad:
        await reg.create("p", spec(variants=[{"id": "c", "weight": 1, "backends": ["a"]},
                                             {"id": "t", "weight": 1, "backends": ["zz"]}]), "a")
    assert bad.value.details == [{"field": "variants.1.backends", "message": "'zz' is not a backend of 'm'"}]
    await reg.create("p", spec("one"), "a")
    await reg.create("p", spec("two"), "a")
    await reg.transition("p", "one", "start", "a")
    with pytest.raises(Conflict) as busy:
        await reg.transition("p", "two", "start", "a")
    assert busy.value.code == "experiment_active"
    await reg.transition("p", "one", "stop", "a")
    assert (await reg.transition("p", "two", "start", "a")).status == "running"


async def test_contract_bounds():
    for bad in ({"weight": -1}, {"weight": 10_001}, {"id": "has space"}):
        with pytest.raises(ValidationError):
            spec(variants=[{"id": "c", "weight": 1, **bad}, {"id": "t", "weight": 1}])
    with pytest.raises(ValidationError):
        spec(variants=[{"id": f"v{i}", "weight": 1} for i in range(9)])  # at most 8 variants
    with pytest.raises(ValidationError):
        spec(alpha=0.5)
    with pytest.raises(ValidationError):
        FeedbackIn(request_id="r1", score=100.5)
    with pytest.raises(ValidationError):
        FeedbackIn(request_id="r1", score=math.nan)


async def test_stored_documents_are_revalidated_on_read(env):
    reg, repo, store, _ = env
    await reg.create("p", spec("good"), "a")
    await reg.create("p", spec("bad"), "a")
    raw = await store.read("p", "bad")
    raw["spec"]["variants"][0]["weight"] = 99_999  # edited behind the API's back
    store._docs[("p", "bad")] = raw
    with pytest.raises(InvalidStoredDocument):
        await reg.get("p", "bad")
    page = await reg.all("p")
    assert [e.id for e in page.items] == ["good"] and [d.id for d in page.invalid] == ["bad"]
    book = ExperimentBook(repo, ttl=60, max_stale=60)
    await reg.transition("p", "good", "start", "a")
    assert (await book.active("p", "m")).id == "good"  # the bad neighbour does not take routing down
    repaired = await reg.update("p", "bad", spec("bad"), "a", None)  # a full PUT repairs it
    assert repaired.status == "draft"


# ---- feedback and results (request-log rows in the in-memory table, read by the real query code)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def row(table: MemoryTable, rid: str, variant: str, *, latency: float, status: int = 200, key: str = "k1",
        backend: str | None = "x", tokens: int = 0, cost: float = 0.0, experiment: str = "exp", model: str = "m",
        minute: int = 1, **attrs) -> None:
    rec = UsageRecord(request_id=rid, project_id="p", key_id=key, operation="chat", resource=model, status=status,
                      target=backend, latency_ms=latency, overhead_ms=1.0, cost_usd=cost,
                      at=T0 + timedelta(minutes=minute),
                      attributes={"experiment": experiment, "variant": variant, "total_tokens": tokens, **attrs})
    e = rec.to_entity()
    table.rows[(e["PartitionKey"], e["RowKey"])] = e


@pytest.fixture
async def results_env(env):
    reg, repo, store, _ = env
    await reg.create("p", spec(min_samples=5), "a")
    exp = await reg.transition("p", "exp", "start", "a")
    exp.started_at = T0  # the calls below happened after the start
    exp = await repo.replace(exp)
    table = MemoryTable()
    fb = FeedbackService(Repository(store, Feedback), repo, table, max_age=timedelta(days=7))
    for i, (lat, status) in enumerate([(100, 200), (200, 200), (300, 200), (400, 200), (500, 502)]):
        row(table, f"ra{i}", "control", latency=lat, status=status, tokens=10 if status == 200 else 0,
            cost=0.001 if status == 200 else 0.0, minute=i + 1)
    for i, lat in enumerate([50, 60, 70, 80, 90]):
        row(table, f"rb{i}", "treat", latency=lat, tokens=20, cost=0.002, minute=i + 1)
    # rows that must not count
    row(table, "hit", "treat", latency=1, cache="hit", backend=None)  # a cache hit: no variant answered
    row(table, "paused", "control", latency=9999, experiment_paused=True)  # served while paused
    row(table, "quota", "treat", latency=2, status=429, backend=None)  # refused before any backend
    row(table, "other-exp", "control", latency=9999, experiment="older")
    row(table, "other-model", "control", latency=9999, model="m2")
    return exp, table, fb, reg


async def test_feedback_only_on_the_callers_own_calls_and_bounded(results_env):
    exp, table, fb, reg = results_env
    now = T0 + timedelta(hours=1)
    saved = await fb.submit("p", "k1", FeedbackIn(request_id="ra0", score=1), now)
    assert (saved.variant, saved.experiment, saved.score) == ("control", "exp", 1)  # the variant the log recorded
    again = await fb.submit("p", "k1", FeedbackIn(request_id="ra0", score=4), now)
    assert again.id == saved.id and again.score == 4  # a second score replaces the first
    with pytest.raises(NotFound) as other:
        await fb.submit("p", "k2", FeedbackIn(request_id="ra0", score=0), now)  # another key's call
    assert other.value.code == "request_not_found"
    with pytest.raises(NotFound):
        await fb.submit("p", "k1", FeedbackIn(request_id="ra0", score=0), now + timedelta(days=8))  # too old
    with pytest.raises(Conflict) as paused:
        await fb.submit("p", "k1", FeedbackIn(request_id="paused", score=1), now)
    assert paused.value.code == "experiment_paused"
    assert len(await fb.for_experiment("p", "exp", 100)) == 1
    await reg.transition("p", "exp", "stop", "a")
    with pytest.raises(Conflict) as closed:
        await fb.submit("p", "k1", FeedbackIn(request_id="ra1", score=1), now)
    assert closed.value.code == "experiment_closed"


async def test_results_match_hand_computed_values(results_env):
    exp, table, fb, _ = results_env
    now = T0 + timedelta(hours=1)
    for rid, score in (("ra0", 1), ("ra1", 2), ("ra2", 3), ("rb0", 3), ("rb1", 4), ("rb2", 5)):
        await fb.submit("p", "k1", FeedbackIn(request_id=rid, score=score), now)
    # another key's feedback document on the same request id joins no call of that key: never counted
    await fb._repo.create(Feedback(id=feedback_id("exp", "k2", "ra3"), project_id="p", experiment="exp",
                                   variant="control", key_id="k2", request_id="ra3", score=100))
    r = await compute(exp, table, await fb.for_experiment("p", "exp", 1000), now, max_rows=1000)
    c, t = r.variants
    # control: 5 calls, one 502 → 20 %; latencies 100…500: nearest-rank p50 = 3rd = 300, p95 = 5th = 500
    assert (c.variant, c.requests, c.error_rate, c.latency_p50_ms, c.latency_p95_ms) == ("control", 5, 0.2, 300, 500)
    assert (c.tokens, c.cost_usd, c.feedback_count, c.mean_feedback) == (40, 0.004, 3, 2.0)
    assert (t.requests, t.error_rate, t.latency_p50_ms, t.latency_p95_ms) == (5, 0.0, 70, 90)
    assert (t.tokens, t.cost_usd, t.feedback_count, t.mean_feedback) == (100, 0.01, 3, 4.0)
    assert r.rows_counted == 10 and not r.truncated
    [pair] = r.comparisons
    fb_cmp, err_cmp, lat_cmp = pair.verdict.comparisons
    # feedback [1,2,3] vs [3,4,5]: t = -2 / sqrt(1/3 + 1/3) = -2.4495, df = 4; closed form for 4 df:
    # F(t) = 1/2 + 3/8 · t/sqrt(1 + t²/4) · (1 - t²/(12 (1 + t²/4))) = 0.96476 → p = 0.0705: not significant
    assert fb_cmp.statistic == pytest.approx(-2.449490, abs=1e-5) and fb_cmp.p_value == pytest.approx(0.0705, abs=2e-4)
    assert not fb_cmp.significant
    # errors 1/5 vs 0/5: pooled 0.1, se = sqrt(.1 × .9 × (1/5 + 1/5)) = 0.18974 → z = 1.0541, p = 0.2918
    assert err_cmp.statistic == pytest.approx(1.0541, abs=1e-4) and err_cmp.p_value == pytest.approx(0.2918, abs=1e-4)
    # latency: means 300 vs 70, variances 25 000 and 250 → t = 230 / sqrt(5000 + 50) = 3.2366, df = 4.08:
    # between the 4-df table values 2.776 (p = .05) and 3.747 (p = .02) → significant, treat (faster) wins
    assert lat_cmp.statistic == pytest.approx(3.2366, abs=1e-4) and 0.02 < lat_cmp.p_value < 0.05
    assert r.winner == "treat" and r.summary.startswith("winner: treat (latency, p = 0.0")
    strict = exp.model_copy(update={"spec": exp.spec.model_copy(update={"alpha": 0.01})})
    r2 = await compute(strict, table, [], now, max_rows=1000)
    assert r2.winner is None and r2.summary == "not yet significant"
    few = exp.model_copy(update={"spec": exp.spec.model_copy(update={"min_samples": 6})})
    assert (await compute(few, table, [], now, max_rows=1000)).summary.startswith("not yet significant: fewer")
    capped = await compute(exp, table, [], now, max_rows=3)
    assert capped.truncated and capped.rows_counted <= 3


async def test_more_than_two_variants_compare_each_with_the_control_at_a_corrected_alpha(results_env):
    exp, table, _, _ = results_env
    three = exp.model_copy(update={"spec": exp.spec.model_copy(update={"variants": [
        *exp.spec.variants, exp.spec.variants[1].model_copy(update={"id": "third"})]})})
    r = await compute(three, table, [], T0 + timedelta(hours=1), max_rows=1000)
    assert [(p.variant, p.alpha) for p in r.comparisons] == [("treat", 0.025), ("third", 0.025)]
    assert r.variants[2].requests == 0 and r.winner is None  # "third" has no calls: below min_samples


async def test_an_unstarted_experiment_has_empty_results(env):
    reg, *_ = env
    e = await reg.create("p", spec(), "a")
    r = await compute(e, MemoryTable(), [], T0, max_rows=1000)
    assert r.since is None and r.rows_counted == 0 and r.summary.startswith("not yet significant")


async def test_deleting_an_experiment_deletes_its_feedback(results_env):
    exp, table, fb, reg = results_env
    now = T0 + timedelta(hours=1)
    for rid in ("ra0", "rb0"):
        await fb.submit("p", "k1", FeedbackIn(request_id=rid, score=1), now)
    await reg.transition("p", "exp", "stop", "a")
    await reg.delete("p", "exp", None)
    assert await fb.delete_for("p", "exp") == 2 and await fb.for_experiment("p", "exp", 100) == []


async def test_two_active_experiments_on_one_model_resolve_the_same_way_everywhere(env):
    reg, repo, _, _ = env
    for name, minutes in (("late", 5), ("early", 1)):  # as if two instances raced past the registry's check
        e = await repo.create(Experiment(id=name, project_id="p", spec=spec(name), status="running",
                                         started_at=T0 + timedelta(minutes=minutes)))
    assert (await ExperimentBook(repo, ttl=60, max_stale=60).active("p", "m")).id == "early"
    assert await ExperimentBook(repo, ttl=60, max_stale=60).active("p", "other-model") is None
