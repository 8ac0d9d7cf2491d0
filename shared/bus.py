"""RabbitMQ plumbing on aio-pika: one durable topic exchange, publisher confirms, persistent messages, and per
consuming service a durable quorum queue with delayed retries and a dead-letter (parking) queue."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import (AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection,
                          AbstractRobustExchange, AbstractRobustQueue)
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from . import logs, tracing
from .messages import CloudEvent, UnknownMessageType, parse_event
from .settings import Settings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
ATTEMPTS_HEADER = "x-attempts"
Handler = Callable[[CloudEvent], Awaitable[None]]


def trace_of(event: CloudEvent) -> dict[str, str]:
    """The trace context an event carries (the CloudEvents distributed-tracing extension), empty if none."""
    return {key: value for key in ("traceparent", "tracestate") if (value := getattr(event, key, None))}


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


CONSUMERS = Gauge("bus_consumers", "Consumers this process runs on a queue and the broker still delivers to",
                  ["service", "queue"])
# What the alerts (deploy/prometheus/alerts.yml) watch besides: how much waits, how old it is, and what was parked.
WAITING = Gauge("bus_queue_messages", "Messages ready in a consumer queue, as the broker last said",
                ["service", "queue"])
LAST_CONSUMED = Gauge("bus_last_consumed_timestamp_seconds", "When this process last took a message from the queue",
                      ["service", "queue"])
CONSUMED_AGE = Gauge("bus_consumed_message_age_seconds", "How old (since its CloudEvent time) the last message taken "
                     "from the queue was", ["service", "queue"])
PARKED = Counter("bus_messages_parked_total", "Messages parked in <queue>.dead", ["service", "queue"])
PUBLISH_TIMEOUT_S = 10.0  # a broker that neither confirms nor drops the connection must not hold a request for ever
RECONNECT_INTERVAL_S = 1.0  # between attempts to reach a broker that went away (aio-pika's default is 5 s)
WATCH_INTERVAL_S = 1.0
# How long a consumer (or the channel to publish on) may stay missing on a live connection before `watch` sets it up
# again itself: aio-pika restores a channel the broker closed well within this, but not one closed from our side or
# one whose restore failed.
RESUBSCRIBE_AFTER_S = 5.0


class Absence:
    """How long something has been missing while the connection was up; `overdue` once it is RESUBSCRIBE_AFTER_S."""

    def __init__(self):
        self.since: float | None = None

    def overdue(self, missing: bool) -> bool:
        if not missing:
            self.since = None
            return False
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since < RESUBSCRIBE_AFTER_S:
            return False
        self.since = None
        return True


@dataclass
class Subscription:
    """One consumer the service should run: its queue, the robust channel it is on, its tag and how it is set up.
    aio-pika restores the queue, its bindings and the consumer (same tag) with the channel, because the queue was
    declared through that channel; `live` tells whether the broker is delivering to it right now."""
    service: str
    names: QueueNames
    bindings: list[str]
    on_message: Callable[[AbstractIncomingMessage], Awaitable[None]]
    prefetch: int
    channel: AbstractRobustChannel | None = None
    queue: AbstractRobustQueue | None = None
    tag: str = ""
    missing: Absence = field(default_factory=Absence)

    async def live(self) -> bool:
        if self.channel is None or self.channel.is_closed:
            return False
        try:  # a robust channel waits here for its connection: not live if that takes longer than a glance
            underlay = await asyncio.wait_for(self.channel.get_underlay_channel(), 1)
        except TimeoutError:
            return False
        return self.tag in underlay.consumers

    async def waiting(self) -> int:
        """Messages ready in the queue (a passive declare on the plain channel underneath: nothing to restore)."""
        underlay = await self.channel.get_underlay_channel()
        return (await underlay.queue_declare(self.names.main, passive=True)).message_count


class Bus:
    def __init__(self, settings: Settings, source: str, tracer: Tracer = tracing.OFF):
        self.settings = settings
        self.source = source
        self.tracer = tracer
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.exchange: AbstractRobustExchange | None = None
        self.subscriptions: list[Subscription] = []
        self.consuming = True  # until `stop_consuming`: then no consumer is set up again
        self._publishing = Absence()
        self._handling = 0  # messages whose handler has not finished (acked, retried or parked) yet
        self._handlers: set[asyncio.Task] = set()  # their tasks (see Consumer.on_message)
        self._idle = asyncio.Event()
        self._idle.set()

    async def connect(self) -> "Bus":
        # connect_robust reconnects and restores channels with the exchanges and queues declared through them (and
        # those queues' bindings and consumers) after a broker outage; `watch` covers what it does not.
        self.connection = await aio_pika.connect_robust(
            self.settings.amqp_url, client_properties={"connection_name": self.source},
            reconnect_interval=RECONNECT_INTERVAL_S,
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        self.exchange = await self.channel.declare_exchange(
            self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return self

    async def close(self) -> None:
        # Handlers still running now (stop's settling timed out) are cut: their messages were not acked, so the
        # broker delivers them again.
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for subscription in self.subscriptions:
            for gauge in (CONSUMERS, WAITING):
                with contextlib.suppress(KeyError):
                    gauge.remove(subscription.service, subscription.names.main)
        if self.connection is not None:
            await self.connection.close()

    async def stop_consuming(self) -> None:
        """Take no more messages: cancel every consumer (basic.cancel; a robust channel does not restore it), so
        the broker delivers what is left to the other replicas. Messages already delivered stay with their
        handlers; `drained` waits for them. Safe to call again."""
        if not self.consuming:
            return
        self.consuming = False
        for subscription in self.subscriptions:
            # A connection that is down has no consumer to cancel; its unacked messages go back to the queue.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(subscription.queue.cancel(subscription.tag), WATCH_INTERVAL_S)

    async def drained(self) -> None:
        """Wait until the handlers of the messages delivered so far have finished and acked."""
        await asyncio.sleep(0.1)  # deliveries read before the cancel's reply start their handlers
        while self._handling:
            await self._idle.wait()

    def handler_task(self, handling: Awaitable[None]) -> asyncio.Task:
        """Run a message's handler in a task of its own (see Consumer.on_message), which `close` cuts if need be."""
        task = asyncio.create_task(handling)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        return task

    @contextlib.contextmanager
    def handling(self):
        """Count a message in flight while its handler runs (see `drained`)."""
        self._handling += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._handling -= 1
            if not self._handling:
                self._idle.set()

    @property
    def is_connected(self) -> bool:
        """Connected now with a channel to publish on (a robust connection is not `is_closed` while it reconnects)."""
        return (self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()
                and self.channel is not None and not self.channel.is_closed)

    async def missing_consumers(self) -> list[str]:
        """The queues whose consumer the broker is not delivering to right now."""
        return [subscription.names.main for subscription in self.subscriptions if not await subscription.live()]

    async def publish(self, event: CloudEvent) -> None:
        await self.publish_raw(event.routing_key, event.model_dump_json().encode(), event.id, event.type,
                               trace=trace_of(event))

    async def publish_raw(self, routing_key: str, body: bytes, message_id: str, type_: str,
                          headers: dict | None = None, trace: dict | None = None) -> None:
        """Publish and wait for the broker's confirm; raises if the broker did not take the message. The publish is
        a span in the trace the message carries (`trace`: its traceparent and tracestate)."""
        message = aio_pika.Message(
            body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id, type=type_, app_id=self.source, headers=headers or {},
        )
        with tracing.span(self.tracer, f"publish {routing_key}", SpanKind.PRODUCER, trace if trace is not None else {},
                          {"messaging.system": "rabbitmq", "messaging.operation.type": "send",
                           "messaging.destination.name": self.settings.exchange,
                           "messaging.rabbitmq.destination.routing_key": routing_key,
                           "messaging.message.id": message_id}):
            await self.exchange.publish(message, routing_key=routing_key, mandatory=False, timeout=PUBLISH_TIMEOUT_S)

    async def send_to_queue(self, queue: str, message: AbstractIncomingMessage, headers: dict) -> None:
        """Put a copy of a consumed message straight into a queue (retry or parking), confirmed."""
        copy = aio_pika.Message(
            message.body, content_type=message.content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id, type=message.type, app_id=message.app_id,
            headers={**(message.headers or {}), **headers},
        )
        await self.channel.default_exchange.publish(copy, routing_key=queue, timeout=PUBLISH_TIMEOUT_S)

    async def declare_consumer_queues(self, service: str, bindings: Iterable[str]) -> QueueNames:
        names = QueueNames(self.settings.queue_name(service))
        await self._declare_queues(self.channel, names, bindings)
        return names

    async def _declare_queues(self, channel: AbstractRobustChannel, names: QueueNames,
                              bindings: Iterable[str]) -> AbstractRobustQueue:
        """Declare (and bind) a service's queues through `channel`, which re-declares them whenever it is restored;
        returns the main queue."""
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
            await queue.bind(self.settings.exchange, routing_key=key)
        return queue

    async def consume(self, service: str, bindings: Iterable[str], handler: Handler, prefetch: int = 64) -> QueueNames:
        names = QueueNames(self.settings.queue_name(service))
        subscription = Subscription(service, names, list(bindings), Consumer(self, service, names, handler).on_message,
                                    prefetch)
        await self._subscribe(subscription)
        self.subscriptions.append(subscription)
        CONSUMERS.labels(service, names.main).set(1)
        return names

    async def _subscribe(self, subscription: Subscription) -> None:
        """Consume on a channel of its own, through which the queue is declared: aio-pika restores only consumers
        of queues the (robust) channel itself declared (`get_queue(..., ensure=False)` is not restored)."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=subscription.prefetch)
        queue = await self._declare_queues(channel, subscription.names, subscription.bindings)
        subscription.channel, subscription.queue = channel, queue
        subscription.tag = await queue.consume(subscription.on_message)

    async def watch(self) -> None:
        """Keep the consumers-per-queue gauge current and re-subscribe a consumer that stays missing while the
        connection is up (aio-pika brings back what the broker or the network broke, not a channel closed from
        our side or one whose restore failed); run for the service's lifetime."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("checking the consumers failed; will check again", exc_info=True)

    async def check(self) -> None:
        """One round of `watch`."""
        # While the connection is down, the reconnection restores channels and consumers itself.
        connected = self.connection.connected.is_set()
        for subscription in self.subscriptions:
            live = await subscription.live()
            CONSUMERS.labels(subscription.service, subscription.names.main).set(int(live))
            if live:
                WAITING.labels(subscription.service, subscription.names.main).set(await subscription.waiting())
            if subscription.missing.overdue(connected and not live and self.consuming):
                log.warning("consumer of %s still missing; subscribing again", subscription.names.main)
                # Closed from our side, the stale channel is not restored behind our back.
                with contextlib.suppress(Exception):
                    await subscription.channel.close()
                await self._subscribe(subscription)
        if self._publishing.overdue(connected and self.channel.is_closed):
            log.warning("channel to publish on still closed; opening it again")
            await self.channel.reopen()


class Consumer:
    """Acks on success, retries failures after growing delays, parks after max_attempts: never drops."""

    def __init__(self, bus: Bus, service: str, names: QueueNames, handler: Handler):
        self.bus, self.names, self.handler = bus, names, handler
        self.consumed = (LAST_CONSUMED.labels(service, names.main), CONSUMED_AGE.labels(service, names.main))
        self.parked = PARKED.labels(service, names.main)
        self.delays = bus.settings.retry_delays_ms
        self.max_attempts = bus.settings.max_attempts

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # The channel cancels its delivery callbacks when it closes (a broker restart, a lost connection). Cut there,
        # a handler could stop between the SMTP server's 250 and the record of it (a copy), or leave a claim that
        # the redelivery must wait out: so the handler runs on in a task of its own. Its ack then fails, and the
        # redelivered message finds the work done.
        await asyncio.shield(self.bus.handler_task(self._run(message)))

    async def _run(self, message: AbstractIncomingMessage) -> None:
        with self.bus.handling():
            try:
                await self._on_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the ack, or the copy to a retry or parking queue, did not reach the broker
                log.warning("message not acked; the broker delivers it again",
                            extra={"message_id": message.message_id, "error": repr(exc)})

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        attempts = int((message.headers or {}).get(ATTEMPTS_HEADER, 0)) + 1
        try:
            event = parse_event(message.body)
        except (ValueError, ValidationError, UnknownMessageType) as exc:
            log.error("unreadable message parked", extra={"message_id": message.message_id, "error": str(exc)})
            return await self.park(message, attempts, f"unreadable: {exc}")
        now = time.time()
        self.consumed[0].set(now)
        self.consumed[1].set(max(0.0, now - event.time.timestamp()))
        # Handled under the causing request's id (in logs and events) and as a span in its trace.
        with (logs.correlated(event.correlationid or event.id),
              tracing.span(self.bus.tracer, f"process {event.routing_key}", SpanKind.CONSUMER, trace_of(event),
                           {"messaging.system": "rabbitmq", "messaging.operation.type": "process",
                            "messaging.destination.name": self.names.main, "messaging.message.id": event.id,
                            "messaging.rabbitmq.attempt": attempts})):
            await self._handle(message, event, attempts)

    async def _handle(self, message: AbstractIncomingMessage, event: CloudEvent, attempts: int) -> None:
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
        self.parked.inc()
