"""Queue functions fed by polling Azure Storage queues (Azurite locally), with the Functions host's semantics:
host.json `messageEncoding`, `dequeue_count`, retry after `visibilityTimeout`, `<queue>-poison` after
`maxDequeueCount`, and a renewed lease while a message runs so that a crash mid-message re-delivers it."""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from azure.functions.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from .config import QueueOptions
from .ncrontab import expand_settings

log = logging.getLogger("localhost.queue")


@dataclass
class QueueFunction:
    name: str
    queue: str
    connection: str
    arg_name: str
    func: Any

    @classmethod
    def of(cls, fn: Any, env: dict[str, str]) -> "QueueFunction":
        t = fn.get_trigger().get_dict_repr()
        setting = t.get("connection") or "AzureWebJobsStorage"
        if setting not in env:
            raise ValueError(f"queue function '{fn.get_function_name()}': connection setting '{setting}' is not set")
        return cls(fn.get_function_name(), expand_settings(t["queueName"], env).lower(), env[setting], t["name"],
                   fn.get_user_function())


def decode_body(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.b64decode(content.encode(), validate=True)
    return content.encode()


class QueueListener:
    def __init__(self, fn: QueueFunction, options: QueueOptions, *, lease_seconds: int = 60,
                 min_poll_seconds: float = 0.1) -> None:
        self.fn = fn
        self.options = options
        self.lease_seconds = lease_seconds
        self.min_poll = min_poll_seconds
        self.queue = QueueClient.from_connection_string(fn.connection, fn.queue)
        self.poison = QueueClient.from_connection_string(fn.connection, f"{fn.queue}-poison")

    async def run(self) -> None:
        with contextlib.suppress(Exception):
            await self.queue.create_queue()
        delay = self.min_poll
        try:
            while True:
                try:
                    messages = [m async for m in self.queue.receive_messages(
                        messages_per_page=self.options.batch_size, max_messages=self.options.batch_size,
                        visibility_timeout=self.lease_seconds)]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # storage down: keep polling, slower
                    log.warning("queue %s: receive failed (%s)", self.fn.queue, type(exc).__name__)
                    messages = []
                if messages:
                    delay = self.min_poll
                    await asyncio.gather(*(self._process(m) for m in messages))
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.max_polling_interval.total_seconds())
        finally:
            await self.queue.close()
            await self.poison.close()

    async def _renew(self, message: Any) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 2)
            updated = await self.queue.update_message(message, visibility_timeout=self.lease_seconds)
            message.pop_receipt = updated.pop_receipt

    async def _process(self, message: Any) -> None:
        renew = asyncio.create_task(self._renew(message))
        ok = False
        try:
            body = decode_body(message.content, self.options.message_encoding)
            msg = QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                               expiration_time=message.expires_on, insertion_time=message.inserted_on,
                               time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
            result = self.fn.func(**{self.fn.arg_name: msg})
            if inspect.isawaitable(result):
                await result
            ok = True
        except (binascii.Error, ValueError) as exc:
            log.warning("queue %s: message %s is not valid %s (%s)", self.fn.queue, message.id,
                        self.options.message_encoding, exc)
        except Exception:
            log.exception("queue function %s failed on message %s (dequeue %s)", self.fn.name, message.id,
                          message.dequeue_count)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renew
        if ok:
            await self.queue.delete_message(message)
        elif message.dequeue_count >= self.options.max_dequeue_count:
            with contextlib.suppress(Exception):
                await self.poison.create_queue()
            await self.poison.send_message(message.content)
            await self.queue.delete_message(message)
            log.warning("queue %s: message %s moved to %s-poison", self.fn.queue, message.id, self.fn.queue)
        else:
            await self.queue.update_message(message, visibility_timeout=int(
                self.options.visibility_timeout.total_seconds()))
