"""Helpers for the notifications tests: publish messages as the other services would, read the service's store."""

import asyncio
import inspect
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from shared.bus import Bus
from shared.messages import make_event
from shared.messages.registration import EventInfo, RegistrationConfirmed


def event_info(**changes) -> EventInfo:
    starts = datetime(2027, 3, 4, 9, 0, tzinfo=UTC)
    return EventInfo(**{"slug": "innovasjonsjam-baerum", "title": "Innovasjonsjam i Bærum", "starts_at": starts,
                        "ends_at": starts + timedelta(hours=6), "venue": "Bærum rådhus, Sandvika",
                        "url": "https://moteplass.example.no/innovasjonsjam-baerum", **changes})


def address() -> str:
    return f"deltakar-{uuid.uuid4().hex[:10]}@example.no"


def confirmed(email: str, **changes) -> RegistrationConfirmed:
    return RegistrationConfirmed(**{
        "event": event_info(), "registration_id": uuid.uuid4().hex, "name": "Kari Nordmann", "email": email,
        "language": "nn", "status": "confirmed",
        "manage_url": "http://127.0.0.1:8081/registrations/r1?token=hemmeleg", **changes})


@pytest.fixture
async def publish(settings):
    """Publish a payload (or a ready envelope) on the test's exchange, as the owning service would."""
    bus = await Bus(settings, source="/tests").connect()

    async def send(payload_or_event, **envelope):
        event = payload_or_event if hasattr(payload_or_event, "data") else make_event(
            payload_or_event, source="/moteplass/tests", **envelope)
        await bus.publish(event)
        return event

    yield send
    await bus.close()


@pytest.fixture
async def records(settings, mongo_url):
    """The notifications service's own collection of notification records."""
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[settings.db_name("notifications")]["notifications"]
    await client.close()


async def eventually(condition, timeout_s: float = 10, interval_s: float = 0.05):
    """Wait until a condition (a function returning a value or an awaitable) gives something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


@pytest.fixture
async def listen(settings):
    """Collect the messages published on the test's exchange under a routing pattern."""
    import aio_pika

    from shared.messages import parse_event

    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    received = []

    async def start(pattern: str) -> list:
        exchange = await channel.declare_exchange(settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, pattern)
        async def collect(message) -> None:
            received.append(parse_event(message.body))

        await queue.consume(collect, no_ack=True)
        return received

    yield start
    await connection.close()


@pytest.fixture
async def smtp_later():
    """A mail sink that is not there yet: its SMTP port is known at once, the server starts when asked."""
    from moteplass.mailsink import MailSink
    from tests.conftest import free_port
    from tests.support.mailbox import Mailbox

    class Later:
        port, http_port, sink = free_port(), free_port(), MailSink()
        mailbox = Mailbox(f"http://127.0.0.1:{http_port}")
        started = False

        async def start(self) -> None:
            await self.sink.start("127.0.0.1", self.port, self.http_port)
            self.started = True

    later = Later()
    yield later
    if later.started:
        await later.sink.stop()
