"""A tiny A2A v1.0 agent on a2a-sdk 1.x (no v0.3 compatibility layer: the gateway's bridge is what a 0.3 client
relies on). Echoes the user's text as an artifact, streaming a working status first. Serves JSON-RPC at / and the HTTP+JSON
binding under /rest (both in its card).
Run: python tests/agents/a2a_v1_agent.py PORT"""
from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task or new_task_from_user_message(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if text == "slow":
            await asyncio.sleep(30)
        if text == "trace":  # what reached the agent: trace context headers and message metadata (telemetry tests)
            headers = (context.call_context.state.get("headers") or {}) if context.call_context else {}
            meta = MessageToDict(context.message.metadata) if context.message.HasField("metadata") else {}
            text = json.dumps({"headers": {k: headers.get(k) for k in ("traceparent", "tracestate", "x-correlation-id")},
                               "metadata": meta})
        await updater.add_artifact([Part(text=f"echo(v1): {text}")], name="echo")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def app(port: int) -> Starlette:
    url = f"http://127.0.0.1:{port}/"
    card = AgentCard(
        name="echo-v1", description="Echoes text (A2A 1.0).", version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0"),
                              AgentInterface(url=url + "rest", protocol_binding="HTTP+JSON", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Repeats the text.", tags=["echo"])])
    handler = DefaultRequestHandlerV2(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
    return Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/"),
                             *create_rest_routes(handler, path_prefix="/rest")])


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app(port), host="127.0.0.1", port=port, log_level="warning")
