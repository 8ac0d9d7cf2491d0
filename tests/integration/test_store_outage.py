"""A store outage answers 503 with Retry-After on every service (never a 500), and the services recover by themselves
when the store returns. The test kills a private nx-27017 of its own (never the session's) and starts it again on
the same port and data."""

import asyncio
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from moteplass import devstack
from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from services.registration.config import RegistrationConfig
from tests.conftest import free_port

pytestmark = pytest.mark.integration


class PrivateStore:
    def __init__(self, data: Path):
        self.data, self.port = data, free_port()
        self.url = f"mongodb://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.process = devstack.start_store(self.data, self.port, self.data / "nx.log")
        await devstack.wait_for_store(self.url)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
async def store(tmp_path):
    value = PrivateStore(tmp_path / "nx-27017")
    try:
        await value.start()
        yield value
    finally:
        value.kill()


@pytest.fixture
async def services(store, settings, start_service) -> dict[str, str]:
    on_store = settings.model_copy(update={"mongo_url": store.url})
    return {
        "registration": await start_service(
            lambda s: registration_app(s, RegistrationConfig(posts_per_minute=100_000)), "registration",
            app_settings=on_store),
        "comments": await start_service(
            lambda s: comments_app(s, CommentsConfig(posts_per_minute=1000, new_threads_per_hour=1000)), "comments",
            app_settings=on_store),
        "notifications": await start_service(notifications_app, "notifications", app_settings=on_store),
    }


def new_event() -> dict:
    starts = datetime.now(UTC) + timedelta(days=30)
    return {"slug": f"utan-lager-{uuid.uuid4().hex[:8]}", "title": "Møteplass", "kind": "jam", "venue": "Sandvika",
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(), "capacity": 50,
            "language": "nn"}


async def test_a_store_outage_answers_503_with_retry_after_and_the_services_recover_by_themselves(
        store, services, http_session, admin_headers, moderator_headers):
    registration, comments, notifications = services["registration"], services["comments"], services["notifications"]
    event = new_event()
    async with http_session.post(f"{registration}/events", json=event, headers=admin_headers) as resp:
        assert resp.status == 201, await resp.text()
    slug = event["slug"]

    def requests(n: int) -> list[tuple[str, str, dict]]:
        """(method, url, options) across the services: reads and writes, public and signed in, that need the store."""
        person = {"name": "Kari Nordmann", "email": f"kari-{n}-{uuid.uuid4().hex[:6]}@example.no",
                  "organisation": "Bærum kommune", "consent": True}
        thread = f"{comments}/threads/%2Futan-lager-{n}/comments"
        return [
            ("POST", f"{registration}/events/{slug}/registrations", {"json": person}),
            ("GET", f"{registration}/events/{slug}", {}),
            ("GET", f"{registration}/events", {}),
            ("POST", f"{registration}/events", {"json": new_event(), "headers": admin_headers}),
            ("GET", f"{registration}/events/{slug}/registrations", {"headers": admin_headers}),
            ("POST", thread, {"json": {"author_name": "Kari", "email": person["email"], "body": f"Hei {n}"}}),
            ("GET", thread, {}),
            ("GET", f"{comments}/moderation/comments", {"headers": moderator_headers}),
            ("GET", f"{notifications}/notifications", {"headers": admin_headers}),
        ]

    async def answer(method: str, url: str, options: dict) -> tuple[str, int, str | None]:
        async with http_session.request(method, url, **options) as resp:
            await resp.read()
            return f"{method} {url}", resp.status, resp.headers.get("Retry-After")

    async def ready(base: str) -> int:
        async with http_session.get(f"{base}/readyz") as resp:
            return resp.status

    before = await asyncio.gather(*(answer(*r) for r in requests(1)))
    assert all(status < 300 for _, status, _ in before), before

    store.kill()
    started = time.monotonic()
    during = await asyncio.gather(*(answer(*r) for r in requests(2)))
    took = time.monotonic() - started
    assert [(what, status, retry) for what, status, retry in during if status != 503 or not retry] == []
    assert await asyncio.gather(*(ready(base) for base in services.values())) == [503] * 3

    await store.start()
    deadline = time.monotonic() + 30
    while (after := await asyncio.gather(*(answer(*r) for r in requests(3)))) and any(
            status >= 300 for _, status, _ in after):
        assert time.monotonic() < deadline, f"not recovered within 30 s: {after}"
        await asyncio.sleep(0.5)
    assert [await ready(base) for base in services.values()] == [200] * 3
    print(f"\nstore down: {len(during)} requests answered 503 + Retry-After within {took:.1f} s; "
          f"recovered {time.monotonic() - deadline + 30:.1f} s after the store returned")


@pytest.fixture
async def http_session():
    async with aiohttp.ClientSession() as session:
        yield session
