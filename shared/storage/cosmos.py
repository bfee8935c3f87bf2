"""Cosmos DB (NoSQL API) DocumentStore: one container partitioned by `/pk` (the project id).

Every call is bounded by `timeout` so an unreachable account turns into DependencyUnavailable quickly instead of
hanging a request in the SDK's connection retries; the caller decides whether to serve from cache (fail-static).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import AlreadyExists, DependencyUnavailable, GatewayError, NotFound, PreconditionFailed
from .documents import DocPage, Query, decode_cursor, encode_cursor, ensure_storable, kinds_of

# The Cosmos SDK (and aiohttp under it) loads with the first client (`make_cosmos_client`), not when the app is
# imported: the worker indexes the functions without it (cold start, docs/benchmarks.md "Start-up").
if TYPE_CHECKING:
    from azure.cosmos.aio import ContainerProxy, CosmosClient

T = TypeVar("T")


def _unavailable(exc: BaseException) -> DependencyUnavailable:
    return DependencyUnavailable(
        "The registry (Cosmos DB) is unreachable; nothing was written. Retry shortly.",
        details={"dependency": "cosmos", "reason": type(exc).__name__},
    )


def _mapped(exc: Exception) -> GatewayError | None:
    """The gateway's error for an SDK/transport failure; None: not ours to translate (re-raised as is)."""
    from azure.cosmos import exceptions  # loaded already: an operation ran, so a client was made

    if isinstance(exc, exceptions.CosmosResourceExistsError):
        return AlreadyExists("A resource with this id already exists.")
    if isinstance(exc, exceptions.CosmosAccessConditionFailedError):
        return PreconditionFailed("The resource was changed since it was read (ETag mismatch).")
    if isinstance(exc, exceptions.CosmosResourceNotFoundError):
        return NotFound("The resource does not exist.")
    if isinstance(exc, exceptions.CosmosHttpResponseError):
        retryable = exc.status_code in (408, 429, 449, 500, 502, 503, 504) or exc.status_code is None
        return _unavailable(exc) if retryable else None
    if isinstance(exc, (asyncio.TimeoutError, OSError, exceptions.CosmosClientTimeoutError)):
        return _unavailable(exc)
    # aiohttp/azure-core transport errors have no common base worth naming
    return _unavailable(exc) if type(exc).__module__.startswith(("aiohttp", "azure.core")) else None


def _if_not_modified() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


class CosmosDocumentStore:
    def __init__(self, client_factory: Callable[[], CosmosClient], database: str, container: str, *,
                 create_if_missing: bool, timeout: float) -> None:
        # The client is made on first use, inside the worker's event loop, so importing the app needs no config.
        self._client_factory = client_factory
        self._client_obj: CosmosClient | None = None
        self._database = database
        self._container_name = container
        self._create = create_if_missing
        self._timeout = timeout
        self._container: ContainerProxy | None = None
        self._lock = asyncio.Lock()

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(op, self._timeout)
        except GatewayError:
            raise
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    @property
    def _client(self) -> CosmosClient:
        if self._client_obj is None:
            try:
                self._client_obj = self._client_factory()
            except ValueError as exc:
                raise DependencyUnavailable(f"The registry is not configured: {exc}",
                                            details={"dependency": "cosmos", "reason": "not_configured"}) from exc
        return self._client_obj

    async def container(self) -> ContainerProxy:
        if self._container is not None:
            return self._container
        async with self._lock:
            if self._container is None:
                if self._create:
                    from azure.cosmos import PartitionKey

                    db = await self._call(self._client.create_database_if_not_exists(self._database))
                    self._container = await self._call(db.create_container_if_not_exists(
                        self._container_name, partition_key=PartitionKey(path="/pk")))
                else:
                    self._container = self._client.get_database_client(self._database).get_container_client(
                        self._container_name)
        return self._container

    async def read(self, partition: str, id: str) -> dict[str, Any] | None:
        c = await self.container()
        try:
            return await self._call(c.read_item(id, partition_key=partition))
        except NotFound:
            return None

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        ensure_storable(doc)
        c = await self.container()
        return await self._call(c.create_item(doc))

    async def replace(self, doc: dict[str, Any], etag: str) -> dict[str, Any]:
        ensure_storable(doc)
        c = await self.container()
        return await self._call(c.replace_item(doc["id"], doc, etag=etag, match_condition=_if_not_modified()))

    async def delete(self, partition: str, id: str, etag: str | None = None) -> None:
        c = await self.container()
        cond = {"etag": etag, "match_condition": _if_not_modified()} if etag else {}
        await self._call(c.delete_item(id, partition_key=partition, **cond))

    async def query(self, q: Query, limit: int, cursor: str | None = None) -> DocPage:
        c = await self.container()
        # The partition filter is also in the SQL text: the SDK scopes by header, but the local Cosmos server
        # only honours the text, and it costs nothing on the real service.
        kinds = kinds_of(q)
        if len(kinds) == 1:
            clauses, params = ["c.kind = @kind"], [{"name": "@kind", "value": kinds[0]}]
        else:
            clauses = [f"c.kind IN ({', '.join(f'@kind{i}' for i in range(len(kinds)))})"]
            params = [{"name": f"@kind{i}", "value": k} for i, k in enumerate(kinds)]
        if q.partition is not None:
            clauses.append("c.pk = @pk")
            params.append({"name": "@pk", "value": q.partition})
        for i, (field, value) in enumerate(sorted(q.equals.items())):
            if not field.isidentifier():  # field names come from code, never from a request
                raise ValueError(f"not a field name: {field!r}")
            clauses.append(f"c.{field} = @v{i}")
            params.append({"name": f"@v{i}", "value": value})
        for j, (field, value) in enumerate(sorted(q.contains.items())):
            if not field.isidentifier():
                raise ValueError(f"not a field name: {field!r}")
            clauses.append(f"ARRAY_CONTAINS(c.{field}, @c{j})")
            params.append({"name": f"@c{j}", "value": value})
        sql = f"SELECT * FROM c WHERE {' AND '.join(clauses)} ORDER BY c.id"
        scope = {"partition_key": q.partition} if q.partition is not None else {}
        token = decode_cursor(cursor) if cursor else None
        if token is not None:
            try:
                json.loads(token)
            except ValueError:
                decode_cursor("!")  # raises the one invalid-cursor error
        pages = c.query_items(sql, parameters=params, max_item_count=limit, **scope).by_page(token)

        async def first_page() -> DocPage:
            async for page in pages:
                items = [item async for item in page]
                nxt = pages.continuation_token
                return DocPage(items, encode_cursor(nxt) if nxt else None)
            return DocPage([], None)

        return await self._call(first_page())

    async def ping(self) -> None:
        container = await self.container()
        await self._call(container.read())

    async def close(self) -> None:
        if self._client_obj is not None:
            await self._client_obj.close()


def make_cosmos_client(*, connection_string: str | None, endpoint: str | None, credential: Any,
                       timeout: float) -> CosmosClient:
    """Connection string locally (emulator), managed identity (`DefaultAzureCredential`) in Azure."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.cosmos.aio import CosmosClient

    common: dict[str, Any] = {
        # Without discovery the SDK talks to the given endpoint only; the local server has no regions.
        "enable_endpoint_discovery": False,
        "connection_timeout": max(1, int(timeout)),
        "retry_total": 1,
        # No netrc/proxy environment lookups per request (see shared/storage/tables.py); the Cosmos client does not
        # pass use_env_settings on to its transport, so it gets one built that way.
        "transport": AioHttpTransport(use_env_settings=False),
    }
    if connection_string:
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        url = parts["AccountEndpoint"]
        verify = not url.startswith("http://")
        return CosmosClient(url, credential=parts["AccountKey"], connection_verify=verify, **common)
    if endpoint:
        return CosmosClient(endpoint, credential=credential, **common)
    raise ValueError("Set COSMOS_CONNECTION_STRING (local) or COSMOS_ENDPOINT (Azure, managed identity).")
