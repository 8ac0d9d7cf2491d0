"""Fixtures for the registration service's integration tests: the running service, an admin client, and a tap on
the test exchange that records every message published."""

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from services.registration.app import create_app
from services.registration.config import RegistrationConfig
from tests.support.bus_tap import BusTap


@pytest.fixture
async def tap(settings):
    async with BusTap(settings, "registration.#", "event.#") as tap:
        yield tap


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
