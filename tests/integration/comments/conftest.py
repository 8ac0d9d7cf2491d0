"""Fixtures for the comments service: the app on its port with test-friendly limits, and a tap on comment.*."""

import aiohttp
import pytest

from services.comments.app import create_app
from services.comments.config import CommentsConfig
from tests.support.bus_tap import BusTap


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


@pytest.fixture
async def tap(settings):
    async with BusTap(settings, "comment.#") as tap:
        yield tap


def comment(**fields) -> dict:
    return {"author_name": "Kari Nordmann", "email": "kari@example.no", "body": "Takk for ein god møteplass!",
            **fields}
