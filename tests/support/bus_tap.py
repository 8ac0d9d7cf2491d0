"""A tap on the test's exchange: a private queue bound to the routing keys a test names, recording every message
published there as a subscriber bound to them would receive it."""

import asyncio
import json
import re
import time

import aio_pika

from shared.settings import Settings


class BusTap:
    """`async with BusTap(settings, "registration.#", "event.#") as tap:` — start it before the service whose
    messages it is to see, so that nothing published is missed."""

    def __init__(self, settings: Settings, *routing_keys: str):
        self.settings = settings
        self.routing_keys = routing_keys or ("#",)
        self.messages: list[dict] = []

    async def __aenter__(self) -> "BusTap":
        self.connection = await aio_pika.connect(self.settings.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in self.routing_keys:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append(json.loads(message.body))

    def of_type(self, kind: str | None = None, **data) -> list[dict]:
        """Messages of a routing key (any, if None), v1 unless `kind` names its version (e.g.
        registration.cancelled.v2), whose data has the values given (e.g. registration_id=…)."""
        versioned = kind if kind is None or re.search(r"\.v\d+$", kind) else f"{kind}.v1"
        return [m for m in self.messages
                if versioned in (None, m["type"].removeprefix("no.moteplass."))
                and all(m["data"].get(name) == value for name, value in data.items())]

    async def wait_for(self, kind: str | None = None, count: int = 1, timeout_s: float = 10, **data) -> list[dict]:
        """The messages `of_type(kind, **data)`, once there are at least `count`."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.of_type(kind, **data)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} {kind or 'any'} message(s) with {data}, got {len(found)} "
                                     f"among {[m['type'] for m in self.messages]}")
            await asyncio.sleep(0.02)
        return found
