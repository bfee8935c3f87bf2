"""The response cache's Cosmos store against the real local Cosmos server (portable mode: no VectorDistance there),
and the same contract on the in-memory store."""
from __future__ import annotations

import uuid

import pytest

from dev.emulators import Emulators
from shared.cache_semantic.cosmos_store import CosmosCacheStore
from shared.cache_semantic.entry import CachedAnswer, CacheEntry
from shared.cache_semantic.stores import MemoryCacheStore
from shared.storage.cosmos import CosmosDocumentStore, make_cosmos_client

NOW = 1_000_000.0


@pytest.fixture(params=["cosmos", "memory"])
async def store(request, emulators: Emulators):
    clock = lambda: NOW  # noqa: E731
    if request.param == "memory":
        yield MemoryCacheStore(clock=clock)
        return
    docs = CosmosDocumentStore(
        lambda: make_cosmos_client(connection_string=emulators.cosmos_connection_string, endpoint=None,
                                   credential=None, timeout=5),
        "cache-" + uuid.uuid4().hex[:8], "responsecache", create_if_missing=True, timeout=5)
    s = CosmosCacheStore(docs.container, mode="portable", timeout=5, clock=clock)
    s.docs = docs
    yield s
    await docs.close()


def entry(key: str, scope: str, vector: list[float], *, expires: float = NOW + 60, text: str = "a") -> CacheEntry:
    return CacheEntry(id=key, scope=scope, prompt=f"prompt {key}", vector=vector,
                      answer=CachedAnswer(content=text, model="m", prompt_tokens=3, completion_tokens=4),
                      created_at=NOW - 1, expires_at=expires)


async def test_exact_nearest_expiry_and_scope(store):
    await store.put(entry("k1", "s1", [1.0, 0.0, 0.0], text="one"))
    await store.put(entry("k2", "s1", [0.6, 0.8, 0.0], text="two"))
    await store.put(entry("k3", "s1", [0.0, 0.0, 1.0], expires=NOW - 1))  # expired: never served
    await store.put(entry("k4", "s2", [1.0, 0.0, 0.0]))  # another scope
    got = await store.get_exact("s1", "k1")
    assert got is not None and got.answer.content == "one" and got.answer.completion_tokens == 4
    assert await store.get_exact("s1", "k3") is None and await store.get_exact("s2", "k1") is None
    ranked = await store.nearest("s1", [0.8, 0.6, 0.0], 5)
    assert [e.id for e, _ in ranked] == ["k2", "k1"]  # cosine 0.96, then 0.8
    assert ranked[0][1] == pytest.approx(0.96) and ranked[1][1] == pytest.approx(0.8)
    await store.put(entry("k1", "s1", [1.0, 0.0, 0.0], text="one again"))  # upsert
    assert (await store.get_exact("s1", "k1")).answer.content == "one again"


async def test_an_invalid_stored_document_is_skipped_not_served(emulators: Emulators):
    docs = CosmosDocumentStore(
        lambda: make_cosmos_client(connection_string=emulators.cosmos_connection_string, endpoint=None,
                                   credential=None, timeout=5),
        "cache-" + uuid.uuid4().hex[:8], "responsecache", create_if_missing=True, timeout=5)
    s = CosmosCacheStore(docs.container, mode="portable", timeout=5, clock=lambda: NOW)
    await s.put(entry("good", "s", [1.0, 0.0]))
    c = await docs.container()
    await c.upsert_item({"id": "bad", "pk": "s", "prompt": "x", "vector": [1.0, 0.0], "answer": {"content": 5},
                         "created_at": NOW, "expires_at": NOW + 60})
    assert [e.id for e, _ in await s.nearest("s", [1.0, 0.0], 5)] == ["good"]
    assert await s.get_exact("s", "bad") is None and s.invalid_documents == 2
    await docs.close()


class RecordingContainer:
    """Records the query the vector mode sends (the local server has no VectorDistance to run it)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows, self.queries = rows, []

    def query_items(self, query, parameters, partition_key):
        self.queries.append((query, parameters, partition_key))

        async def rows():
            for r in self.rows:
                yield r
        return rows()


async def test_vector_mode_orders_by_vector_distance_in_the_scope_partition():
    row = {"id": "k", "pk": "s", "prompt": "p", "vector": [1.0, 0.0], "answer": {"content": "c", "model": "m"},
           "created_at": NOW, "expires_at": NOW + 9, "similarity": 0.93}
    container = RecordingContainer([row])

    async def get():
        return container
    s = CosmosCacheStore(get, mode="vector", clock=lambda: NOW)
    ranked = await s.nearest("s", [1.0, 0.0], 3)
    assert [(e.id, sim) for e, sim in ranked] == [("k", 0.93)]
    query, params, pk = container.queries[0]
    assert "ORDER BY VectorDistance(c.vector, @v)" in query and "TOP 3" in query and "c.pk = @scope" in query
    assert pk == "s" and {"name": "@v", "value": [1.0, 0.0]} in params
