"""A cache refresh validates a page of stored documents on the event loop: the repository hands the loop back
between documents once ~1 ms of work has run, and the page comes back complete and in order."""
from __future__ import annotations

import itertools

from shared.pillars.models.domain import Model, ModelSpec
from shared.slices import Slicer
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository


def model(i: int) -> Model:
    return Model(id=f"m{i:02d}", project_id="p", spec=ModelSpec(name=f"m{i:02d}", tokenizer="gpt-4o", backends=[
        {"id": "a", "kind": "openai_compatible", "endpoint": "https://up.example/v1", "deployment": "gpt-4o"}]))


async def test_listing_a_page_validates_its_documents_in_slices():
    store = MemoryDocumentStore()
    for i in range(20):
        await Repository(store, Model).create(model(i))
    reads = itertools.count()
    pauses: list[int] = []

    async def pause() -> None:
        pauses.append(1)

    # each clock read stands for one document's validation of 0.4 ms: a hand-back after every ~3 documents
    repo = Repository(store, Model, slicer=lambda: Slicer(0.001, clock=lambda: next(reads) * 0.0004, pause=pause))
    page = await repo.list("p", limit=200)
    assert [m.spec.name for m in page.items] == sorted(f"m{i:02d}" for i in range(20)) and not page.invalid
    assert len(pauses) >= 5
