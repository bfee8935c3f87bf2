"""An a2a-sdk 0.3.x client (run from its own venv) calling an agent through the gateway. Prints one JSON line:
what the card said, the blocking answer's task state and text, and the streamed event kinds and states; with
OTHER_KEY, what another key's tasks/get and tasks/cancel of that task answered.
Run: <venv>/bin/python tests/agents/a2a_v03_client.py AGENT_BASE_URL KEY TEXT [OTHER_KEY]"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, TaskIdParams, TaskQueryParams, TextPart


def _text(task) -> str:
    return " ".join(p.root.text for a in task.artifacts or [] for p in a.parts if hasattr(p.root, "text"))


async def as_other(base: str, card, other_key: str, task_id: str) -> dict:
    out: dict = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {other_key}"}, timeout=30) as http:
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        for name, call in (("get", client.get_task(TaskQueryParams(id=task_id))),
                           ("cancel", client.cancel_task(TaskIdParams(id=task_id)))):
            try:
                await call
                out[name] = "answered"
            except Exception as exc:  # noqa: BLE001 - what the 0.3 SDK raised is the result
                out[name] = f"{type(exc).__name__}: {exc}"
    return out


async def main(base: str, key: str, text: str, other_key: str | None = None) -> dict:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        card = await A2ACardResolver(http, base).get_agent_card()
        out: dict = {"card_url": card.url, "card_version": card.protocol_version}
        for streaming in (False, True):
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
            msg = Message(role=Role.user, message_id=uuid.uuid4().hex, parts=[Part(root=TextPart(text=text))])
            events, last = [], None
            async for event in client.send_message(msg):
                if isinstance(event, tuple):
                    task, update = event
                    last = task
                    events.append(update.kind if update is not None else "task")
                    events.append(task.status.state.value)
                else:
                    events.append("message")
            key_ = "stream" if streaming else "send"
            out[key_] = {"events": events, "state": last.status.state.value if last else None,
                         "text": _text(last) if last else None, "task_id": last.id if last else None}
        got = await client.get_task(TaskQueryParams(id=out["send"]["task_id"]))
        out["get"] = {"state": got.status.state.value, "text": _text(got)}
        if other_key:
            out["other"] = await as_other(base, card, other_key, out["send"]["task_id"])
        return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
