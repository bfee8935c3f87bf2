"""An a2a-sdk 0.3.x client (run from its own venv) calling an agent through the gateway. Prints one JSON line:
what the card said, the blocking answer's task state and text, and the streamed event kinds and states.
Run: <venv>/bin/python tests/agents/a2a_v03_client.py AGENT_BASE_URL KEY TEXT"""
from __future__ import annotations

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, Part, Role, TaskQueryParams, TextPart


def _text(task) -> str:
    return " ".join(p.root.text for a in task.artifacts or [] for p in a.parts if hasattr(p.root, "text"))


async def main(base: str, key: str, text: str) -> dict:
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
        return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))))
