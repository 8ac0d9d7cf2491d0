"""Helpers for the notifications tests: publish messages as the other services would, read the service's store."""

import asyncio
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
    """Wait until an async condition returns something truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        if result := await condition():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)
