"""Test infrastructure: the real broker and a real store (nx-27017 started here unless MONGO_URL points at a
MongoDB), the dev mail sink (unless MAILPIT_URL/SMTP_HOST point at a Mailpit), and per-test isolation by database,
exchange and queue names."""

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable

import aio_pika
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

from moteplass import devstack
from moteplass.mailsink import MailSink
from shared.auth import Role, issue_token
from shared.settings import Settings
from tests.support.mailbox import Mailbox

SERVICES = ("registration", "comments", "notifications")
# Fixtures for every test: rabbit_node (a private RabbitMQ node for broker faults).
pytest_plugins = ["tests.support.rabbit_node"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def within_one_window(seconds: int = 60, need_s: float = 5) -> None:
    """Wait, if it is about to, for the current fixed rate-limit window to turn, so that hits a test counts all
    fall in one window."""
    left = seconds - time.time() % seconds
    if left < need_s:
        await asyncio.sleep(left)


@pytest.fixture(scope="session")
async def mongo_url(tmp_path_factory):
    if url := os.environ.get("MONGO_URL"):
        yield url
        return
    data = tmp_path_factory.mktemp("nx-27017")
    port = free_port()
    process = devstack.start_store(data, port, data / "nx.log")
    url = f"mongodb://127.0.0.1:{port}"
    try:
        await devstack.wait_for_store(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
async def amqp_url():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    await devstack.ensure_broker(url)
    return url


@pytest.fixture(scope="session")
async def mail_sink():
    """(smtp_host, smtp_port, api_url) of the mail sink the tests read."""
    if api := os.environ.get("MAILPIT_URL"):
        yield os.environ.get("SMTP_HOST", "127.0.0.1"), int(os.environ.get("SMTP_PORT", 1025)), api
        return
    sink = MailSink()
    smtp_port, http_port = free_port(), free_port()
    await sink.start("127.0.0.1", smtp_port, http_port)
    yield "127.0.0.1", smtp_port, f"http://127.0.0.1:{http_port}"
    await sink.stop()


@pytest.fixture
def mailbox(mail_sink) -> Mailbox:
    return Mailbox(mail_sink[2])


@pytest.fixture
async def settings(mongo_url, amqp_url, mail_sink):
    """Settings isolated to this test: its own databases, exchange and queues, removed afterwards."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    smtp_host, smtp_port, _ = mail_sink
    ports = {f"{service}_port": free_port() for service in SERVICES}
    value = Settings(
        mongo_url=mongo_url, amqp_url=amqp_url, db_prefix=f"{tag}_", exchange=f"{tag}.events",
        queue_prefix=f"{tag}.", smtp_host=smtp_host, smtp_port=smtp_port, retry_delays_ms=[100, 300],
        max_attempts=3, relay_interval_s=0.2, public_base_url=f"http://127.0.0.1:{ports['registration_port']}",
        comments_public_url=f"http://127.0.0.1:{ports['comments_port']}",
        notifications_public_url=f"http://127.0.0.1:{ports['notifications_port']}",
        jwt_secret="test-secret-that-is-long-enough-32b", metrics_token="test-metrics-token", **ports)
    yield value
    client = AsyncMongoClient(mongo_url)
    for service in SERVICES:
        await client.drop_database(value.db_name(service))
    await client.close()
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for service in SERVICES:
        main = value.queue_name(service)
        for name in [main, f"{main}.dead", *(f"{main}.retry.{i}" for i in range(len(value.retry_delays_ms)))]:
            await channel.queue_delete(name)
    await channel.exchange_delete(value.exchange)
    await connection.close()


@pytest.fixture
def admin_headers(settings) -> dict:
    return {"Authorization": f"Bearer {issue_token(settings, Role.admin)}"}


@pytest.fixture
def moderator_headers(settings) -> dict:
    return {"Authorization": f"Bearer {issue_token(settings, Role.moderator)}"}


@pytest.fixture
def metrics_headers(settings) -> dict:
    """What Prometheus sends to read /metrics."""
    return {"Authorization": f"Bearer {settings.metrics_token.get_secret_value()}"}


@pytest.fixture
async def start_service(settings):
    """Start a service's app on its configured port; returns its base URL. Stopped after the test."""
    servers: list[TestServer] = []

    async def start(create_app: Callable[[Settings], web.Application], service: str, port: int | None = None,
                    app_settings: Settings | None = None) -> str:
        port = port or getattr(settings, f"{service}_port")
        server = TestServer(create_app(app_settings or settings), host="127.0.0.1", port=port)
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in reversed(servers):
        await server.close()
