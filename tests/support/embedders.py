"""Embedders for cache tests: all-MiniLM-L6-v2 (real, numpy) behind the cache's Embedder protocol."""
from __future__ import annotations

from shared.cache_semantic.embedder import Embedding


class MiniLMEmbedder:
    def __init__(self) -> None:
        from tests.support.minilm import load

        self._model = load()
        self.calls: list[tuple[str, str, str]] = []

    async def embed(self, project_id: str, model: str, text: str) -> Embedding:
        self.calls.append((project_id, model, text))
        return Embedding([float(x) for x in self._model.embed([text])[0]], tokens=len(text) // 4 + 1)


class FailingEmbedder:
    async def embed(self, project_id: str, model: str, text: str) -> Embedding:
        raise OSError("embeddings backend unreachable")
