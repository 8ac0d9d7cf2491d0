"""The bus plumbing against the real RabbitMQ and store: confirms, retries, parking, idempotency, the outbox relay."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from shared import bus as bus_module
from shared import outbox as outbox_module
from shared.bus import ATTEMPTS_HEADER, Bus
from shared.idempotency import ProcessedMessages
from shared.messages import CloudEvent, make_event
from shared.messages.registration import EventInfo, RegistrationConfirmed
from shared.outbox import Outbox

pytestmark = pytest.mark.integration
SERVICE = "notifications"  # the consuming service these tests pose as; the settings fixture cleans its queues


def confirmed(email: str = "kari@baerum.kommune.no") -> CloudEvent:
    starts = datetime(2026, 12, 1, 9, tzinfo=UTC)
    payload = RegistrationConfirmed(
        event=EventInfo(slug="innovasjonsjam", title="Innovasjonsjam i Bærum", starts_at=starts,
                        ends_at=starts + timedelta(hours=6), venue="Bærum rådhus"),
        registration_id="r1", name="Kari Nordmann", email=email, language="nn", status="confirmed")
    return make_event(payload, source="/moteplass/registration")


async def until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def bus(settings):
    value = await Bus(settings, source="/moteplass/test").connect()
    yield value
    await value.close()


async def get_one(bus: Bus, queue: str, timeout_s: float = 10) -> aio_pika.abc.AbstractIncomingMessage:
    channel = await bus.connection.channel()
    target = await channel.get_queue(queue, ensure=False)
    deadline = time.monotonic() + timeout_s
    while (message := await target.get(fail=False)) is None:
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        await asyncio.sleep(0.05)
    await message.ack()
    return message


async def test_publish_with_confirms_and_consume(bus):
    received: list[CloudEvent] = []

    async def handle(event: CloudEvent) -> None:
        received.append(event)

    await bus.consume(SERVICE, ["registration.#"], handle)
    event = confirmed()
    await bus.publish(event)
    await until(lambda: received)
    assert received[0].id == event.id
    assert isinstance(received[0].data, RegistrationConfirmed)
    assert received[0].data.email == "kari@baerum.kommune.no"


async def test_a_failing_handler_is_retried_after_the_delay_then_succeeds(bus, settings):
    attempts: list[float] = []

    async def flaky(event: CloudEvent) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("SMTP server away")

    await bus.consume(SERVICE, ["registration.#"], flaky)
    await bus.publish(confirmed())
    await until(lambda: len(attempts) == 2)
    assert attempts[1] - attempts[0] >= settings.retry_delays_ms[0] / 1000 * 0.9


async def test_an_always_failing_handler_ends_in_the_dead_queue_with_the_error(bus, settings):
    attempts = 0

    async def broken(event: CloudEvent) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("template missing")

    names = await bus.consume(SERVICE, ["registration.#"], broken)
    event = confirmed()
    await bus.publish(event)
    parked = await get_one(bus, names.dead)
    assert attempts == settings.max_attempts
    assert parked.message_id == event.id
    assert parked.headers[ATTEMPTS_HEADER] == settings.max_attempts
    assert "template missing" in parked.headers["x-error"]


async def test_an_unreadable_message_is_parked_not_dropped(bus):
    async def never(event: CloudEvent) -> None:
        raise AssertionError("an unreadable message must not reach the handler")

    names = await bus.consume(SERVICE, ["registration.#"], never)
    await bus.publish_raw("registration.confirmed.v1", b"{not json", "m-garbled", "no.moteplass.registration.confirmed.v1")
    parked = await get_one(bus, names.dead)
    assert parked.body == b"{not json"
    assert parked.headers["x-error"].startswith("unreadable")


async def test_processed_messages_give_one_effect_for_a_redelivered_id(settings, mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    processed = ProcessedMessages(client[settings.db_name(SERVICE)], consumer="mailer")
    await processed.ensure_indexes()
    effects: list[str] = []

    async def send_mail(event: CloudEvent) -> None:
        effects.append(event.id)

    handle = processed.once(send_mail)
    event = confirmed()
    await handle(event)
    await handle(event)  # the broker redelivers the same message
    await handle(confirmed())
    assert effects == [event.id, effects[1]] and effects[1] != event.id
    assert await processed.seen(event.id)
    await client.close()


@pytest.fixture
async def relayed(bus, settings, mongo_url):
    """A registrations collection for outbox tests, and the messages the bus delivers from the exchange."""
    received: list[CloudEvent] = []

    async def handle(event: CloudEvent) -> None:
        received.append(event)

    await bus.consume(SERVICE, ["registration.#"], handle)
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    yield client[settings.db_name("registration")]["registrations"], received
    await client.close()


async def test_outbox_sweep_publishes_a_stored_entry_and_removes_it(bus, relayed):
    registrations, received = relayed
    event = confirmed()
    # The state change and its event in one write; then the process "dies" before publishing.
    await registrations.insert_one({"_id": "r1", "status": "confirmed", "outbox": []})
    await registrations.update_one({"_id": "r1"}, outbox_module.add([outbox_module.entry(event)]))

    relay = Outbox(bus, [registrations])
    assert await relay.sweep() == 0, "a young entry is left to the request that wrote it"
    assert await relay.sweep(grace=timedelta(0)) == 1
    await until(lambda: received)
    assert received[0].id == event.id
    assert (await registrations.find_one({"_id": "r1"}))["outbox"] == []
    assert await relay.sweep(grace=timedelta(0)) == 0


async def test_a_flush_clears_the_due_mark_of_an_emptied_outbox_only(bus, relayed):
    registrations, received = relayed
    alone, first, later = (outbox_module.entry(confirmed(f"{name}@baerum.kommune.no"))
                           for name in ("kari", "ola", "per"))
    await registrations.insert_many([{"_id": "r1", **outbox_module.holding([alone])},
                                     {"_id": "r2", **outbox_module.holding([first])}])
    # r2 gains an entry while its first is being published.
    await registrations.update_one({"_id": "r2"}, outbox_module.add([later]))

    relay = Outbox(bus, [registrations])
    await relay.flush_many(registrations, [("r1", [alone]), ("r2", [first])])
    await until(lambda: len(received) == 2)
    r1, r2 = await registrations.find_one({"_id": "r1"}), await registrations.find_one({"_id": "r2"})
    assert r1["outbox"] == [] and outbox_module.DUE not in r1, "nothing left for the sweep to visit"
    assert [item["id"] for item in r2["outbox"]] == [later["id"]] and outbox_module.DUE in r2
    assert await relay.sweep(grace=timedelta(0)) == 1, "the entry added meanwhile is still published"
    await until(lambda: len(received) == 3)
    assert {event.id for event in received} == {alone["id"], first["id"], later["id"]}
    assert await relay.sweep(grace=timedelta(0)) == 0


async def test_an_entry_is_published_once_by_a_process_whatever_paths_meet_it(bus, relayed):
    registrations, received = relayed
    event = confirmed()
    stored = outbox_module.entry(event)
    await registrations.insert_one({"_id": "r1", "status": "confirmed", **outbox_module.holding([stored])})
    stale = await registrations.find_one({"_id": "r1"})  # a copy read before the entry is pulled

    relay = Outbox(bus, [registrations])
    # The request that wrote it, the sweep, and later a request holding the stale copy.
    await asyncio.gather(relay.flush(registrations, "r1", [stored]), relay.sweep(grace=timedelta(0)))
    await relay.flush(registrations, "r1", stale["outbox"])
    await until(lambda: received)
    await asyncio.sleep(0.5)
    assert [e.id for e in received] == [event.id]
    assert (await registrations.find_one({"_id": "r1"}))["outbox"] == []


async def test_the_watch_opens_again_a_channel_to_publish_on_that_was_closed_from_our_side(bus):
    watch = asyncio.create_task(bus.watch())
    try:
        await bus.channel.close()  # aio-pika does not restore a channel closed on purpose
        assert not bus.is_connected
        await until(lambda: bus.is_connected, timeout_s=15)
        await bus.publish(confirmed())
    finally:
        watch.cancel()


async def test_stop_consuming_takes_no_more_and_lets_the_handlers_in_flight_finish_and_ack(bus, monkeypatch):
    started: list[str] = []
    finished: list[str] = []
    release = asyncio.Event()

    async def slow(event: CloudEvent) -> None:
        started.append(event.id)
        await release.wait()
        finished.append(event.id)

    names = await bus.consume(SERVICE, ["registration.#"], slow, prefetch=3)
    for _ in range(10):
        await bus.publish(confirmed())
    await until(lambda: len(started) == 3)  # the prefetch: three in flight, seven waiting in the queue
    await bus.stop_consuming()
    draining = asyncio.create_task(bus.drained())
    await asyncio.sleep(0.3)
    assert not draining.done(), "drained before the handlers in flight finished"
    assert await bus.missing_consumers() == [names.main]  # /readyz says so while it drains
    release.set()
    await asyncio.wait_for(draining, 5)
    assert sorted(finished) == sorted(started) and len(started) == 3  # none taken after the cancel
    monkeypatch.setattr(bus_module, "RESUBSCRIBE_AFTER_S", 0)
    await bus.check()  # the watch does not subscribe a stopped consumer again
    assert await bus.missing_consumers() == [names.main]
    # The three were acked; the other seven wait, ready, for another replica.
    channel = await bus.connection.channel()
    queue = await channel.declare_queue(names.main, passive=True)
    assert queue.declaration_result.message_count == 7
    # A quorum queue answers from its local member's state, which may lag the cancel for a moment.
    for _ in range(50):
        if (await channel.declare_queue(names.main, passive=True)).declaration_result.consumer_count == 0:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the broker still counts a consumer 5 s after the cancel")
