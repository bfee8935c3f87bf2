"""The Azure SDK clients the gateway builds never consult the environment's proxy/netrc settings per request.

With `use_env_settings` on (the SDK default), aiohttp re-reads netrc and the proxy variables in a thread pool for
every request: two executor hops per Tables/Cosmos/Queue call, 4-20 % of a loaded gateway's CPU samples in the
issue-13 profiles. The setting lives on the SDK's innermost aiohttp transport, which is what these tests read."""
from __future__ import annotations

import asyncio
from typing import Any

from azure.core.pipeline.transport import AioHttpTransport

from shared.storage.cosmos import make_cosmos_client
from shared.storage.tables import StorageProbe

STORAGE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
           "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
           "TableEndpoint=http://127.0.0.1:1/devstoreaccount1;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;")
COSMOS = "AccountEndpoint=http://127.0.0.1:1/;AccountKey=C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==;"


def _innermost(pipeline: Any) -> AioHttpTransport:
    transport = pipeline._transport
    while not isinstance(transport, AioHttpTransport):
        transport = transport._transport
    return transport


def test_tables_clients_ignore_environment_proxy_settings():
    async def run() -> None:
        probe = StorageProbe.create(connection_string=STORAGE, table_endpoint=None, credential=None, timeout=1)
        table = probe.tables.get_table_client("t")
        assert _innermost(probe.tables._client._client._pipeline)._use_env_settings is False
        assert _innermost(table._client._client._pipeline)._use_env_settings is False
        await probe.tables.close()
    asyncio.run(run())


def test_cosmos_client_ignores_environment_proxy_settings():
    async def run() -> None:
        client = make_cosmos_client(connection_string=COSMOS, endpoint=None, credential=None, timeout=2)
        assert _innermost(client.client_connection.pipeline_client._pipeline)._use_env_settings is False
        await client.close()
    asyncio.run(run())
