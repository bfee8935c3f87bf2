"""Azure Tables access for the monitoring reads and jobs: a missing table reads as empty, an unreachable store
is a structured 503 (never a 5xx stack trace), and the jobs create their tables on first use."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..errors import DependencyUnavailable

REQUEST_LOG_TABLE = "gatewayrequests"  # written by shared/usage (Services.usage_log)
ANALYTICS_TABLE = "gatewayanalytics"


class ReadTable:
    """Wraps a TableClient (or MemoryTable) for reads and small writes with the error mapping above."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def query_entities(self, query_filter: str, **kw: Any) -> AsyncIterator[dict[str, Any]]:
        return self._query(query_filter, kw)

    async def _query(self, query_filter: str, kw: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            async for e in self.table.query_entities(query_filter, **kw):
                yield e
        except Exception as exc:
            # azure-core is imported here, on the error path: the app's import (cold start) does without it
            from azure.core.exceptions import AzureError, ResourceNotFoundError

            if isinstance(exc, ResourceNotFoundError):
                return  # no table yet: nothing was ever logged or rolled up
            if not isinstance(exc, AzureError):
                raise
            raise DependencyUnavailable("Azure Storage is unreachable.",
                                        details={"dependency": "storage", "reason": type(exc).__name__}) from exc

    async def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self.table.create_table()

    def __getattr__(self, name: str) -> Any:  # writes (upsert/delete/transactions) go straight through
        return getattr(self.table, name)
