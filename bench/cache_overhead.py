"""Added latency of a response-cache lookup per request: exact hit, semantic hit and miss, in process.

The store is the in-memory one (what one worker holds) or, with --cosmos CONNECTION_STRING, the local Cosmos
server in portable mode. Embeddings are timed separately: in production they are a network call to the
registered embeddings model; here all-MiniLM-L6-v2 in numpy stands in, and the figure printed for the lookup
excludes the embedding so it is the gateway's own cost.

    .venv/bin/python -m bench.cache_overhead [--entries 1000] [--requests 300]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from shared.cache_semantic.embedder import Embedding
from shared.cache_semantic.service import ResponseCache
from shared.cache_semantic.settings import CacheSettings
from shared.cache_semantic.stores import MemoryCacheStore
from shared.cache_semantic.entry import CachedAnswer


class PrecomputedEmbedder:
    """Embeddings computed before the clock starts: the timed figure is the cache's own work."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self._vectors = vectors

    async def embed(self, project_id: str, model: str, text: str) -> Embedding:
        return Embedding(self._vectors[text], 0)


def body(text: str) -> dict:
    return {"model": "chat", "messages": [{"role": "user", "content": text}]}


async def run(entries: int, requests: int) -> None:
    from bench.cache_quality import load_pairs
    from tests.support.minilm import load

    pairs = load_pairs()
    cached = sorted({p.cached for p in pairs})
    asked = [p.asked for p in pairs if p.same]
    filler = [f"Unrelated stored question number {i} about topic {i % 37}" for i in range(max(0, entries - len(cached)))]
    model = load()
    texts = cached + asked + filler
    t0 = time.perf_counter()
    vecs = model.embed(texts)
    embed_ms = (time.perf_counter() - t0) * 1000 / len(texts)
    vectors = {t: [float(x) for x in v] for t, v in zip(texts, vecs)}
    settings = CacheSettings(enabled=True, semantic=True, embeddings_model="emb", similarity_threshold=0.8)
    cache = ResponseCache(MemoryCacheStore(max_entries_per_scope=entries + 10), PrecomputedEmbedder(vectors))
    for text in cached + filler:
        look = await cache.lookup(settings, project_id="p", key_id="k", model="chat", body=body(text), headers={})
        await cache.save(settings, look, CachedAnswer(content="answer " * 50, model="chat"))
    timings: dict[str, list[float]] = {"exact hit": [], "semantic hit": [], "miss (semantic)": []}
    for i in range(requests):
        for text, label in ((cached[i % len(cached)], "exact hit"), (asked[i % len(asked)], None)):
            look = await cache.lookup(settings, project_id="p", key_id="k", model="chat", body=body(text), headers={})
            name = label or ("semantic hit" if look.status == "hit" else "miss (semantic)")
            timings[name].append(look.lookup_ms)
    print(f"{len(cached) + len(filler)} entries in the scope; embedding (MiniLM, numpy, batched): {embed_ms:.2f} ms/text")
    print(f"{'lookup':>16} {'n':>5} {'p50 ms':>8} {'p95 ms':>8}")
    for name, xs in timings.items():
        if xs:
            xs.sort()
            print(f"{name:>16} {len(xs):5d} {statistics.median(xs):8.3f} {xs[int(0.95 * (len(xs) - 1))]:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(run(args.entries, args.requests))


if __name__ == "__main__":
    main()
