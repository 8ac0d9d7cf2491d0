"""Fixtures for the registration service's integration tests: the running service, an admin client, and a tap on
the test exchange that records every message published."""

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta

import aio_pika
import aiohttp
import pytest

from services.registration.app import create_app
from services.registration.config import RegistrationConfig


class BusTap:
    """A private queue bound to the test exchange: what subscribers would receive."""

    def __init__(self):
        self.messages: list[dict] = []

    async def start(self, settings) -> "BusTap":
        self.connection = await aio_pika.connect(settings.amqp_url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in ("registration.#", "event.#"):
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.messages.append(json.loads(message.body))

    def of_type(self, kind: str) -> list[dict]:
        """Messages of a routing key; v1 unless `kind` names its version (e.g. registration.cancelled.v2)."""
        versioned = kind if re.search(r"\.v\d+$", kind) else f"{kind}.v1"
        return [m for m in self.messages if m["type"] == f"no.moteplass.{versioned}"]

    async def wait_for(self, kind: str, count: int = 1, timeout_s: float = 10, registration_id: str | None = None
                       ) -> list[dict]:
        """The messages of a kind (about one registration, if given), once there are at least `count`."""
        deadline = time.monotonic() + timeout_s
        def matching() -> list[dict]:
            return [m for m in self.of_type(kind) if registration_id in (None, m["data"].get("registration_id"))]

        while len(found := matching()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} {kind} message(s), got {len(found)}")
            await asyncio.sleep(0.02)
        return found


@pytest.fixture
async def tap(settings):
    tap = await BusTap().start(settings)
    yield tap
    await tap.connection.close()


def registration_app(**config):
    """An app factory whose rate limit the tests' bursts from one address do not reach, unless a test sets one."""
    return lambda settings: create_app(settings, RegistrationConfig(**{"posts_per_minute": 100_000, **config}))


@pytest.fixture
async def base(start_service, tap) -> str:
    """The registration service, started after the tap so that nothing it publishes is missed."""
    return await start_service(registration_app(), "registration")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def event_body(slug: str = "innovasjonsjam", capacity: int = 10, **changes) -> dict:
    starts = datetime.now(UTC) + timedelta(days=30)
    return {"slug": slug, "title": "Innovasjonsjam i Bærum", "description": "Open Space om innovasjonskommunar.",
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=6)).isoformat(),
            "venue": "Bærum rådhus", "capacity": capacity, "language": "nn", **changes}


def person(n: int = 1, **changes) -> dict:
    return {"name": f"Deltakar {n}", "email": f"deltakar{n}@baerum.kommune.no", "organisation": "Bærum kommune",
            "consent": True, **changes}


@pytest.fixture
def create_event(http, base, admin_headers):
    async def create(**changes) -> dict:
        async with http.post(f"{base}/events", json=event_body(**changes), headers=admin_headers) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()
    return create


@pytest.fixture
def register(http, base):
    async def post(slug: str, body: dict, status: int = 201, headers: dict | None = None) -> dict:
        async with http.post(f"{base}/events/{slug}/registrations", json=body, headers=headers) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()
    return post
