"""The Responses API id directory across instances: two directories (two workers) over one registry store. The
durable write is in the background (never awaited by the call, bounded), a local miss reads through, expiry holds
on both levels, another project never sees an id, and a failing store degrades to "unknown" (404), never a 5xx."""
from __future__ import annotations

import asyncio

from shared.errors import DependencyUnavailable
from shared.pillars.models.responses_directory import PREFIX, ResponseDirectory, ResponseRoute
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


def pair(store=None, *, now=None, wall=None, **kw):
    repo = Repository(store or MemoryDocumentStore(), ResponseRoute)
    clock, walls = (lambda: now[0]) if now else None, (lambda: wall[0]) if wall else None
    extra = {**({"clock": clock} if clock else {}), **({"wall": walls} if walls else {}), **kw}
    return (ResponseDirectory(max_entries=100, ttl=60, store=repo, **extra),
            ResponseDirectory(max_entries=100, ttl=60, store=repo, **extra), repo)


async def test_an_id_recorded_on_one_worker_is_found_on_another():
    a, b, repo = pair()
    a.record("p", "resp_1", "gpt", "east")
    assert b.find("p", "resp_1") is None  # not in b's memory…
    await a.drain()
    served = await b.lookup("p", "resp_1")  # …but in the registry
    assert (served.model, served.backend) == ("gpt", "east") and b.find("p", "resp_1") is not None
    assert await b.lookup("q", "resp_1") is None  # another project's partition: not there
    assert await b.lookup("p", "resp_unknown") is None
    b.forget("resp_1", "p")  # DELETE on b: gone for a as soon as a's memory does not hold it
    assert await b.lookup("p", "resp_1") is None  # at once on b, before the registry's delete lands
    await b.drain()
    assert await repo.find("p", PREFIX + "resp_1") is None
    assert await ResponseDirectory(max_entries=1, ttl=60, store=repo).lookup("p", "resp_1") is None


async def test_expiry_holds_on_the_durable_level():
    now, wall = [0.0], [1000.0]
    a, b, repo = pair(now=now, wall=wall)
    a.record("p", "resp_2", "gpt", "east")
    await a.drain()
    wall[0] += 30
    served = await b.lookup("p", "resp_2")
    assert served is not None and served.expires == now[0] + 30  # what is left of the TTL, not a fresh one
    c = ResponseDirectory(max_entries=10, ttl=60, store=repo, clock=lambda: now[0], wall=lambda: wall[0])
    wall[0] += 31
    assert await c.lookup("p", "resp_2") is None  # expired in the registry
    await c.drain()
    assert await repo.find("p", PREFIX + "resp_2") is None  # and removed on the way


async def test_the_durable_write_never_blocks_and_is_bounded():
    gate = asyncio.Event()

    class SlowStore(MemoryDocumentStore):
        async def create(self, doc):
            await gate.wait()
            return await super().create(doc)

    a, _, repo = pair(SlowStore(), max_pending=2)
    for i in range(5):
        a.record("p", f"resp_{i}", "gpt", "east")  # returns at once: nothing awaited
    assert a.dropped == 3 and len(a) == 5  # the local level has every id
    gate.set()
    await a.drain()
    stored = [i for i in range(5) if await repo.find("p", f"{PREFIX}resp_{i}") is not None]
    assert stored == [0, 1]
    a.record("p", "bad/id#x", "gpt", "east")  # not a storable id: this worker only
    assert not a._pending and a.find("p", "bad/id#x") is not None


async def test_a_failing_store_answers_unknown_not_an_error():
    class Down(MemoryDocumentStore):
        async def read(self, partition, id):
            raise DependencyUnavailable("down")

        async def create(self, doc):
            raise DependencyUnavailable("down")

    a, b, _ = pair(Down())
    a.record("p", "resp_3", "gpt", "east")
    await a.drain()  # logged, not raised
    assert (await a.lookup("p", "resp_3")).backend == "east"  # the local level still serves it
    assert await b.lookup("p", "resp_3") is None

    class Hung(MemoryDocumentStore):
        async def read(self, partition, id):
            await asyncio.sleep(10)

    _, c, _ = pair(Hung(), timeout=0.05)
    assert await c.lookup("p", "resp_4") is None  # bounded by the timeout
