"""Consumers and publishing come back by themselves after the broker fails, on a private RabbitMQ node (never the
shared one): the node's application stopped for 10 s mid-traffic, every connection closed by the broker, a channel
closed by the broker and one closed from our side. Meanwhile /readyz tells the truth and /metrics counts consumers."""

import asyncio
import inspect
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from services.registration.config import RegistrationConfig
from shared.bus import Bus
from shared.messages import make_event
from shared.messages.registration import RegistrationErased
from shared.mongo import connect
from shared.runtime import RUNTIME
from tests.integration.notifications.conftest import confirmed
from tests.support.rabbit_node import RabbitNode

pytestmark = pytest.mark.integration
CONSUMING = ("notifications", "comments")


@pytest.fixture(scope="module")
async def node(tmp_path_factory):
    """One private node for the module's tests (a boot costs seconds); each test has its own queues on it."""
    async with RabbitNode(tmp_path_factory.mktemp("rabbit")) as value:
        yield value


class System:
    """The three services in this process, on the private node, the test's store and the mail sink."""

    def __init__(self, settings, http: aiohttp.ClientSession):
        self.settings, self.http = settings, http
        self.apps: dict[str, web.Application] = {}
        self.servers: list[TestServer] = []

    async def start(self) -> None:
        factories = {
            "registration": lambda s: registration_app(s, RegistrationConfig(posts_per_minute=100_000)),
            "comments": lambda s: comments_app(s, CommentsConfig(posts_per_minute=1000, new_threads_per_hour=1000)),
            "notifications": notifications_app,
        }
        for service, factory in factories.items():
            app = self.apps[service] = factory(self.settings)
            server = TestServer(app, host="127.0.0.1", port=getattr(self.settings, f"{service}_port"))
            await server.start_server()
            self.servers.append(server)

    async def stop(self) -> None:
        for server in reversed(self.servers):
            await server.close()

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{getattr(self.settings, f'{service}_port')}{path}"

    def bus(self, service: str) -> Bus:
        return self.apps[service][RUNTIME].bus

    async def ready(self, service: str) -> int:
        async with self.http.get(self.url(service, "/readyz")) as resp:
            return resp.status

    async def all_ready(self, status: int) -> bool:
        return all([await self.ready(service) == status for service in CONSUMING])

    async def consumers_metric(self, service: str, headers: dict) -> float:
        async with self.http.get(self.url(service, "/metrics"), headers=headers) as resp:
            text = await resp.text()
        queue = re.escape(self.settings.queue_name(service))
        found = re.search(rf'^bus_consumers\{{[^}}]*queue="{queue}"[^}}]*\}} (\S+)$', text, re.M)
        assert found, f"no bus_consumers sample for {queue}"
        return float(found.group(1))


@pytest.fixture
async def system(node, settings):
    on_node = settings.model_copy(update={"amqp_url": node.amqp_url})
    async with aiohttp.ClientSession() as http:
        value = System(on_node, http)
        try:
            await value.start()
            yield value
        finally:
            await value.stop()


async def until(condition, timeout_s: float, what: str) -> float:
    """Wait until a condition (a function, maybe async) holds; returns the seconds it took."""
    started = time.monotonic()
    while not await _value(condition()):
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def _value(result):
    return await result if inspect.isawaitable(result) else result


async def broker_consumers(node: RabbitNode, settings) -> dict[str, int]:
    """Consumers per main queue of the consuming services, as the broker lists them (list_queues counts a quorum
    queue's consumers only now and then)."""
    listing = await node.ctl("list_consumers", "queue_name", "--quiet", "--no-table-headers")
    queues = listing.split()
    return {service: queues.count(settings.queue_name(service)) for service in CONSUMING}


async def create_event(system: System, admin_headers: dict) -> str:
    slug = f"robust-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC) + timedelta(days=30)
    async with system.http.post(system.url("registration", "/events"), headers=admin_headers, json={
            "slug": slug, "title": "Robust møteplass", "kind": "jam", "venue": "Bærum rådhus",
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "capacity": 1000, "language": "nn"}) as resp:
        assert resp.status == 201, await resp.text()
    return slug


async def register(system: System, slug: str, email: str) -> tuple[int, dict]:
    async with system.http.post(system.url("registration", f"/events/{slug}/registrations"), json={
            "name": "Kari Nordmann", "email": email, "organisation": "Bærum kommune", "consent": True}) as resp:
        return resp.status, await resp.json()


async def anonymised(settings, email: str) -> bool:
    client = connect(settings)
    try:
        return await client[settings.db_name("comments")]["comments"].count_documents({"email": email}) == 0
    finally:
        await client.close()


async def test_consumers_and_publishing_come_back_after_the_broker_stops_for_10_s_mid_traffic(
        node, system, admin_headers, metrics_headers, mailbox):
    settings = system.settings
    slug = await create_event(system, admin_headers)
    # A person who has commented and registered; erased while the broker is away, so registration's relay must
    # publish the erasure after it and the comments service's consumer act on it.
    erased = f"kari-{uuid.uuid4().hex[:8]}@example.no"
    async with system.http.post(system.url("comments", "/threads/%2Frobust/comments"), json={
            "author_name": "Kari", "email": erased, "body": "Takk!"}) as resp:
        assert resp.status == 201, await resp.text()
    status, registration = await register(system, slug, erased)
    assert status == 201, registration
    assert await system.all_ready(200)

    answered: dict[str, int] = {}
    stop_traffic = asyncio.Event()

    async def traffic() -> None:  # ~10 registrations a second before, during and after the outage
        while not stop_traffic.is_set():
            email = f"p-{uuid.uuid4().hex[:10]}@example.no"
            answered[email], _ = await register(system, slug, email)
            await asyncio.sleep(0.1)

    traffic_task = asyncio.create_task(traffic())
    try:
        await asyncio.sleep(1)
        await node.stop_app()
        stopped = time.monotonic()
        noticed = await until(lambda: system.all_ready(503), 5, "/readyz 503 on both consumers")
        async with system.http.post(system.url("registration", f"/registrations/{registration['id']}/erase"),
                                    headers=admin_headers) as resp:
            assert resp.status == 204, await resp.text()
        await asyncio.sleep(10 - (time.monotonic() - stopped))
        assert await system.all_ready(503), "still not ready while the broker is away"
        await node.start_app()
        recovered = await until(lambda: system.all_ready(200), 30, "/readyz 200 after the broker returned")
        await asyncio.sleep(2)
    finally:
        stop_traffic.set()
        await traffic_task
    print(f"\nbroker stop_app 10 s: /readyz 503 after {noticed:.1f} s, 200 again {recovered:.1f} s after start_app; "
          f"{len(answered)} registrations")

    assert set(answered.values()) == {201}, f"answers while the broker was away: {answered.values()}"
    assert await broker_consumers(node, settings) == {"notifications": 1, "comments": 1}
    for service in CONSUMING:
        assert await system.consumers_metric(service, metrics_headers) == 1
    # Everything registered before, during and after the outage is mailed, without a restart.
    async def all_mailed() -> bool:
        return set(answered) <= await mailbox.recipients()

    await until(all_mailed, 60, "a mail for every registration")
    await until(lambda: anonymised(settings, erased), 30, "the erasure stored during the outage acted on")


async def consumed_after(system: System, mailbox, what: str) -> None:
    """Messages published now reach both consumers: notifications (a mail) and comments (an erasure)."""
    settings = system.settings
    email = f"{what}-{uuid.uuid4().hex[:8]}@example.no"
    async with system.http.post(system.url("comments", "/threads/%2Frobust/comments"), json={
            "author_name": "Ola", "email": email, "body": "Hei"}) as resp:
        assert resp.status == 201, await resp.text()
    publisher = await Bus(settings, source="/tests").connect()
    try:
        await publisher.publish(make_event(confirmed(email), source="/tests"))
        await publisher.publish(make_event(RegistrationErased(
            registration_id="r1", event_slug="robust", email=email, reason="request"), source="/tests"))
    finally:
        await publisher.close()
    await until(lambda: anonymised(settings, email), 15, f"comments consuming after {what}")
    await mailbox.wait_for(email, timeout_s=15)
    assert await system.all_ready(200)


async def test_consumers_come_back_after_the_broker_closes_every_connection(node, system, mailbox):
    transports = {service: system.bus(service).connection.transport for service in CONSUMING}
    await node.ctl("close_all_connections", "fault test")
    await until(lambda: all(system.bus(service).connection.transport is not transports[service]
                            for service in CONSUMING), 10, "reconnected")
    await until(lambda: system.all_ready(200), 15, "/readyz 200 after reconnecting")
    assert await broker_consumers(node, system.settings) == {"notifications": 1, "comments": 1}
    await consumed_after(system, mailbox, "reconnect")


async def test_a_consumer_comes_back_after_the_broker_closes_its_channel(node, system, mailbox):
    subscription = system.bus("comments").subscriptions[0]
    underlay = await subscription.channel.get_underlay_channel()
    # Acknowledging a delivery the channel never had is a channel error: the broker closes that channel.
    await underlay.basic_ack(delivery_tag=987654)
    await until(lambda: underlay.is_closed, 5, "the broker closed the channel")
    await until(lambda: system.all_ready(200), 15, "/readyz 200 after the channel was restored")
    await consumed_after(system, mailbox, "channel-closed")


async def test_a_consumer_closed_from_our_side_is_subscribed_again_and_readyz_says_so_meanwhile(
        node, system, mailbox):
    subscription = system.bus("comments").subscriptions[0]
    await subscription.channel.close()  # aio-pika does not restore a channel closed on purpose
    assert await system.ready("comments") == 503
    took = await until(lambda: system.all_ready(200), 15, "/readyz 200 after subscribing again")
    print(f"\nconsumer closed from our side: subscribed again after {took:.1f} s")
    await consumed_after(system, mailbox, "resubscribed")


async def test_a_handler_in_flight_when_the_broker_closes_the_connection_runs_to_its_end(node, settings):
    # aiormq cancels the delivery callbacks of a connection the broker closes (a restart does that): a mail the SMTP
    # server took must still be recorded as sent, not cut off before its record. The ack is lost with the
    # connection, so the message comes again, to a handler that finds the work done.
    started: list[str] = []
    outcomes: list[str] = []
    closed = asyncio.Event()
    bus = await Bus(settings.model_copy(update={"amqp_url": node.amqp_url}), source="/tests").connect()

    async def slow(event) -> None:
        started.append(event.id)
        try:
            await closed.wait()
        except asyncio.CancelledError:
            outcomes.append("cut off")
            raise
        outcomes.append(event.id)

    try:
        await bus.consume("notifications", ["registration.#"], slow, prefetch=1)
        event = make_event(confirmed("kari@example.no"), source="/tests")
        await bus.publish(event)
        await until(lambda: started, 5, "the message delivered")
        await node.ctl("close_all_connections", "fault test")
        closed.set()
        await until(lambda: outcomes.count(event.id) == 2, 15, "the handler finished, and ran again on redelivery")
        assert "cut off" not in outcomes
    finally:
        await bus.close()
