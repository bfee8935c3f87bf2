"""Assembling the cache step from the worker's services: the store follows the registry (Cosmos → a Cosmos
container of its own, vector search in Azure; in-memory registry → in-memory cache), embeddings go through the
models pillar's own upstream client, breakers and catalog."""
from __future__ import annotations

from typing import Any

from shared.cache_semantic.cosmos_store import CosmosCacheStore
from shared.cache_semantic.embedder import UpstreamEmbedder
from shared.cache_semantic.service import ResponseCache
from shared.cache_semantic.stores import CacheStore, MemoryCacheStore
from shared.routing.breaker import Breakers

from .cache_step import CacheStep


def cache_store(services: Any) -> CacheStore:
    from shared.storage.cosmos import CosmosDocumentStore, make_cosmos_client

    s = services.settings
    if not isinstance(services.store, CosmosDocumentStore):
        return MemoryCacheStore()
    conn = s.cosmos_connection_string.get_secret_value() if s.cosmos_connection_string else None
    container = CosmosDocumentStore(
        lambda: make_cosmos_client(connection_string=conn, endpoint=s.cosmos_endpoint,
                                   credential=None if conn else services.credential,
                                   timeout=s.cache_timeout_seconds),
        s.cosmos_database, s.cache_container, create_if_missing=s.cosmos_create_if_missing,
        timeout=s.cache_timeout_seconds)
    services._on_close("response cache store", container.close)
    return CosmosCacheStore(container.container, mode="vector" if s.cache_vector_search else "portable",
                            timeout=s.cache_timeout_seconds)


def cache_step(services: Any, spec: Any) -> CacheStep:
    # The embeddings calls keep their own breakers: a cache lookup must never trip a model's data-plane breaker.
    embedder = UpstreamEmbedder(find_model=services.catalog.get, http=spec.http, breakers=Breakers())
    return CacheStep(ResponseCache(cache_store(services), embedder), quotas=services.quota_book,
                     enforcer=services.enforcer)
