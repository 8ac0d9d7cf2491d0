"""Fixtures for the comments service: the app on its port with test-friendly limits, and a tap on comment.*."""

import asyncio
import json
import time

import aio_pika
import aiohttp
import pytest

from services.comments.app import create_app
from services.comments.config import CommentsConfig


@pytest.fixture
def config() -> CommentsConfig:
    # Generous limits so a test meets only the limit it is about.
    return CommentsConfig(posts_per_minute=1000, new_threads_per_hour=1000, moderators=["moderator@example.no"])


@pytest.fixture
def start_comments(start_service):
    """Start the service with a configuration of the test's own, behind one trusted proxy (so a test's
    X-Forwarded-For makes it many clients); returns its base URL."""

    async def start(config: CommentsConfig) -> str:
        return await start_service(lambda s: create_app(s.model_copy(update={"trusted_proxies": 1}), config),
                                   "comments")

    return start


@pytest.fixture
async def base(start_comments, config) -> str:
    return await start_comments(config)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


class Tap:
    """Collects the comment.* messages published on the test's exchange."""

    def __init__(self):
        self.events: list[dict] = []

    async def wait_for(self, type_suffix: str, count: int = 1, timeout_s: float = 10) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events if e["type"].endswith(type_suffix)]
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"expected {count} {type_suffix}, got {[e['type'] for e in self.events]}"
                return found
            await asyncio.sleep(0.02)


@pytest.fixture
async def tap(settings):
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="comment.#")
    collected = Tap()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        collected.events.append(json.loads(message.body))
        await message.ack()

    await queue.consume(on_message)
    yield collected
    await connection.close()


def comment(**fields) -> dict:
    return {"author_name": "Kari Nordmann", "email": "kari@example.no", "body": "Takk for ein god møteplass!",
            **fields}
