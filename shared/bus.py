"""RabbitMQ plumbing on aio-pika: one durable topic exchange, publisher confirms, persistent messages, and per
consuming service a durable quorum queue with delayed retries and a dead-letter (parking) queue."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection, AbstractRobustExchange
from pydantic import ValidationError

from .messages import CloudEvent, UnknownMessageType, parse_event
from .settings import Settings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
ATTEMPTS_HEADER = "x-attempts"
Handler = Callable[[CloudEvent], Awaitable[None]]


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the message is parked at once."""


@dataclass(frozen=True)
class QueueNames:
    main: str

    @property
    def dead(self) -> str:
        return f"{self.main}.dead"

    def retry(self, level: int) -> str:
        return f"{self.main}.retry.{level}"


def quorum(**arguments) -> dict:
    # At-least-once dead-lettering needs reject-publish overflow; without it RabbitMQ may drop on dead-lettering.
    return {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish",
            **arguments}


class Bus:
    def __init__(self, settings: Settings, source: str):
        self.settings = settings
        self.source = source
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.exchange: AbstractRobustExchange | None = None

    async def connect(self) -> "Bus":
        # connect_robust reconnects and re-declares channels, queues, bindings and consumers after a broker outage.
        self.connection = await aio_pika.connect_robust(
            self.settings.amqp_url, client_properties={"connection_name": self.source}
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await self.channel.declare_exchange(
            self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return self

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed

    async def publish(self, event: CloudEvent) -> None:
        await self.publish_raw(event.routing_key, event.model_dump_json().encode(), event.id, event.type)

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str, type_: str,
                          headers: dict | None = None) -> None:
        """Publish and wait for the broker's confirm; raises if the broker did not take the message."""
        message = aio_pika.Message(
            body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id, type=type_, app_id=self.source, headers=headers or {},
        )
        await self.exchange.publish(message, routing_key=routing_key, mandatory=False)

    async def send_to_queue(self, queue: str, message: AbstractIncomingMessage, headers: dict) -> None:
        """Put a copy of a consumed message straight into a queue (retry or parking), confirmed."""
        copy = aio_pika.Message(
            message.body, content_type=message.content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id, type=message.type, app_id=message.app_id,
            headers={**(message.headers or {}), **headers},
        )
        await self.channel.default_exchange.publish(copy, routing_key=queue)

    async def declare_consumer_queues(self, service: str, bindings: Iterable[str]) -> QueueNames:
        names = QueueNames(self.settings.queue_name(service))
        channel = self.channel
        await channel.declare_queue(names.dead, durable=True, arguments=quorum())
        for level, delay in enumerate(self.settings.retry_delays_ms):
            # A retry queue holds a message for `delay`, then dead-letters it back to the main queue.
            await channel.declare_queue(names.retry(level), durable=True, arguments=quorum(
                **{"x-message-ttl": delay, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.main}))
        queue = await channel.declare_queue(names.main, durable=True, arguments=quorum(
            **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.dead,
               # Guards against a message that crashes the process before it can be acked or retried.
               "x-delivery-limit": self.settings.max_attempts * 2}))
        for key in bindings:
            await queue.bind(self.exchange, routing_key=key)
        return names

    async def consume(self, service: str, bindings: Iterable[str], handler: Handler, prefetch: int = 64) -> QueueNames:
        names = await self.declare_consumer_queues(service, bindings)
        consumer_channel = await self.connection.channel()
        await consumer_channel.set_qos(prefetch_count=prefetch)
        queue = await consumer_channel.get_queue(names.main, ensure=False)
        await queue.consume(Consumer(self, names, handler).on_message)
        return names


class Consumer:
    """Acks on success, retries failures after growing delays, parks after max_attempts: never drops."""

    def __init__(self, bus: Bus, names: QueueNames, handler: Handler):
        self.bus, self.names, self.handler = bus, names, handler
        self.delays = bus.settings.retry_delays_ms
        self.max_attempts = bus.settings.max_attempts

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        try:
            event = parse_event(message.body)
        except (ValueError, ValidationError, UnknownMessageType) as exc:
            log.error("unreadable message parked", extra={"message_id": message.message_id, "error": str(exc)})
            return await self.park(message, attempts, f"unreadable: {exc}")
        try:
            await self.handler(event)
        except PermanentFailure as exc:
            log.warning("message failed permanently", extra={"message_id": event.id, "error": str(exc)})
            return await self.park(message, attempts, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempts >= self.max_attempts:
                log.exception("message parked after %d attempts", attempts, extra={"message_id": event.id})
                return await self.park(message, attempts, repr(exc))
            level = min(attempts - 1, len(self.delays) - 1)
            log.warning("message will be retried", extra={"message_id": event.id, "attempt": attempts,
                                                          "delay_ms": self.delays[level], "error": repr(exc)})
            await self.bus.send_to_queue(self.names.retry(level), message, {ATTEMPTS_HEADER: attempts})
        await message.ack()

    async def park(self, message: AbstractIncomingMessage, attempts: int, error: str) -> None:
        await self.bus.send_to_queue(self.names.dead, message, {ATTEMPTS_HEADER: attempts, "x-error": error[:1000]})
        await message.ack()
