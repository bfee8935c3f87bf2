"""A 2026-07-28 server asks a 2025-era client for input (elicitation), through a gateway with no sticky sessions.

The server answers `resultType: "input_required"` and expects the same request again with `inputResponses` and its
`requestState`. A 2025-06-18+ client that declared `elicitation` can only be asked with an `elicitation/create`
request on the call's SSE stream, and answers with a JSON-RPC response in a POST of its own — which may land on
any instance. So the instance holding the stream sends the requests (ids `gw-input-<random>`), and the instance
that receives an answer stores it in the registry (`InputAnswer`, keyed by the caller and the id: another key's
answer is stored under another document and never read); the holding instance polls for the answers (as a
per-call approval's wait does), then sends the call again with them — a governed call of its own — and streams its
result. One round is relayed; a server asking again gets -32035. Form-mode elicitation only (URL mode, sampling and
roots are not a 2025 client's to give through a stream it did not open for them)."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson
from pydantic import Field

from ...domain.base import Entity, utcnow
from ...errors import AlreadyExists
from ...storage.repository import Repository
from .context import McpContext
from .mcp import jsonrpc as rpc
from .mcp import revisions as rev

PREFIX = "gw-input-"
_MAX_ANSWER_BYTES = 64 * 1024


class InputAnswer(Entity):
    kind: ClassVar[str] = "mcp_input_answer"
    answer: dict[str, Any] = Field(default_factory=dict)  # the client's ElicitResult (bounded in `answer`)
    expires_at: datetime


def relayable(ctx: McpContext, result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]] | None:
    """(input key, elicitation params for this client) of every input request, when this 2025 client can be asked
    all of them on its stream; else None."""
    requests = result.get("inputRequests")
    if ctx.modern or not ctx.elicitation or ctx.session is None or not isinstance(requests, dict) or not requests:
        return None
    asks = []
    for key, request in list(requests.items())[:8]:
        params = request.get("params") if isinstance(request, dict) else None
        if not isinstance(key, str) or request.get("method") != "elicitation/create" or not isinstance(params, dict) \
                or params.get("mode", "form") != "form":
            return None
        asks.append((key, _for_client(params, ctx.client_version)))
    return asks if len(asks) == len(requests) else None


def _for_client(params: dict[str, Any], version: str) -> dict[str, Any]:
    out = {"message": str(params.get("message", ""))[:4000], "requestedSchema": params.get("requestedSchema") or {
        "type": "object", "properties": {}}}
    if rev.at_least(version, "2025-11-25"):
        out["mode"] = "form"
    return out


class InputRelay:
    def __init__(self, repo: Repository[InputAnswer], *, wait_seconds: float, poll_seconds: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._repo = repo
        self._wait, self._poll, self._clock = wait_seconds, poll_seconds, clock

    @staticmethod
    def new_id() -> str:
        return PREFIX + os.urandom(16).hex()

    @staticmethod
    def owns(rpc_id: Any) -> bool:
        return isinstance(rpc_id, str) and rpc_id.startswith(PREFIX) and len(rpc_id) <= 64

    async def answer(self, project_id: str, caller: str, message: dict[str, Any]) -> None:
        """Store a client's answer to one of our requests (a decline when it answered with an error)."""
        result = message.get("result")
        answer = result if isinstance(result, dict) and len(orjson.dumps(result)) <= _MAX_ANSWER_BYTES \
            else {"action": "cancel"}
        doc = InputAnswer(id=_doc_id(caller, message["id"]), project_id=project_id, answer=answer,
                          expires_at=utcnow() + timedelta(seconds=max(60.0, self._wait * 2)))
        try:
            await self._repo.create(doc)
        except AlreadyExists:
            pass  # answered twice: the first answer stands

    async def wait(self, project_id: str, caller: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The answers to `ids`, once all are stored (each read once, then deleted); rpc.Fault after the wait."""
        deadline, found = self._clock() + self._wait, {}
        while True:
            for rid in ids:
                if rid not in found and (doc := await self._repo.find(project_id, _doc_id(caller, rid))) is not None:
                    found[rid] = doc.answer
                    await self._repo.delete(project_id, doc.id)
            if len(found) == len(ids):
                return found
            if self._clock() >= deadline:
                raise rpc.Fault(rpc.REQUEST_TIMEOUT, f"No answer to the tool's question within {self._wait:g}s; "
                                                     "call the tool again to be asked again.")
            await asyncio.sleep(self._poll)


def _doc_id(caller: str, rpc_id: str) -> str:
    return "in-" + hashlib.sha256(f"{caller}|{rpc_id}".encode()).hexdigest()[:40]
