"""The hot path's group commit against the real store and broker: a batch of concurrent registrations shares one
write on the event, one insert and one outbox removal, and still keeps every rule of a single registration."""

import asyncio
import time
from datetime import timedelta

from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient

from services.registration.routes import REGISTRATIONS
from tests.conftest import free_port

from .conftest import event_body, person, registration_app


async def stored(settings, collection: str, query: dict) -> list[dict]:
    client = AsyncMongoClient(settings.mongo_url)
    try:
        return await client[settings.db_name("registration")][collection].find(query).to_list()
    finally:
        await client.close()


async def test_a_duplicate_inside_a_batch_is_409_alone_and_its_place_is_passed_on(settings, http, base,
                                                                                 create_event):
    await create_event(capacity=3)

    async def post(body: dict) -> tuple[int, dict]:
        async with http.post(f"{base}/events/innovasjonsjam/registrations", json=body) as resp:
            return resp.status, await resp.json()

    # Sent together, so that they share batches: the duplicate takes a place, then gives it back (and a seat it
    # gave back goes to the first in line before its 409 is answered).
    results = await asyncio.gather(*(post(person(n)) for n in range(5)), post(person(0)))
    assert sorted(status for status, _ in results) == [201] * 5 + [409]
    [event] = await stored(settings, "events", {"_id": "innovasjonsjam"})
    assert (len(event["seats"]), event["free"], len(event["waitlist"])) == (3, 0, 2)
    statuses = {doc["_id"]: doc["status"] for doc in await stored(settings, "registrations", {})}
    assert statuses == {**{rid: "confirmed" for rid in event["seats"]},
                        **{rid: "waitlisted" for rid in event["waitlist"]}}


async def test_a_batch_that_lost_the_race_to_another_instance_is_placed_on_fresh_data(http, base, start_service,
                                                                                    create_event, register):
    other = await start_service(registration_app(), "registration", port=free_port())
    await create_event(capacity=3)
    first = await register("innovasjonsjam", person(1))  # `base` now knows 2 seats are free
    async with http.post(f"{other}/events/innovasjonsjam/registrations", json=person(2)) as resp:
        assert resp.status == 201
    late = await asyncio.gather(*(register("innovasjonsjam", person(n)) for n in (3, 4, 5)))
    assert first["status"] == "confirmed"
    assert sorted((r["status"], r["position"]) for r in late) == [
        ("confirmed", None), ("waitlisted", 1), ("waitlisted", 2)]
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        event = await resp.json()
    assert (event["seats_left"], event["waitlist_length"]) == (0, 2)


async def test_published_entries_are_cleared_from_every_registration_of_a_batch(settings, base, tap, create_event,
                                                                              register):
    await create_event(capacity=10)
    created = await asyncio.gather(*(register("innovasjonsjam", person(n)) for n in range(8)))
    await tap.wait_for("registration.confirmed", 8)
    # Cleared after the answer (bookkeeping), so wait for it.
    ids = {"_id": {"$in": [r["id"] for r in created]}}
    deadline = time.monotonic() + 10
    while [doc for doc in await stored(settings, "registrations", ids) if doc["outbox"]]:
        assert time.monotonic() < deadline, "published entries were not cleared"
        await asyncio.sleep(0.02)
    assert len(await stored(settings, "registrations", ids)) == 8


async def test_the_reconciler_still_finds_a_new_orphan_beside_places_it_checked_before(settings, http, start_service,
                                                                                     admin_headers):
    app = registration_app(orphan_after_s=0.2)(settings)
    base = await start_service(lambda _: app, "registration")
    flows = app[REGISTRATIONS]
    async with http.post(f"{base}/events", json=event_body(capacity=2), headers=admin_headers) as resp:
        assert resp.status == 201
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(1)) as resp:
        holder = await resp.json()
    await flows.reconcile(timedelta(0))  # the holder's seat is now known to be sound

    async def crash(*_args):
        raise RuntimeError("the process died here")

    flows.store.insert_registrations, insert = crash, flows.store.insert_registrations
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(2)) as resp:
        assert resp.status == 500  # its seat is taken, its registration never stored
    flows.store.insert_registrations = insert
    deadline = time.monotonic() + 10
    while (await flows.event("innovasjonsjam")).seats != [holder["id"]]:
        assert time.monotonic() < deadline, "the orphaned seat was not given back"
        await asyncio.sleep(0.05)
        await flows.reconcile(timedelta(0))
    [event] = await stored(settings, "events", {"_id": "innovasjonsjam"})
    assert event["free"] == 1


async def test_a_registration_right_after_another_instance_changed_the_event_carries_the_change(
        http, base, tap, start_service, create_event, register, admin_headers):
    # `base` has the event as it stood after its first registration; the place-taking write of the next one only
    # lands on an event unchanged since, so the change made through the other instance reaches its message.
    other = await start_service(registration_app(), "registration", port=free_port())
    await create_event(capacity=5)
    await register("innovasjonsjam", person(1))
    async with http.patch(f"{other}/events/innovasjonsjam", json={"venue": "Sandvika storsenter"},
                          headers=admin_headers) as resp:
        assert resp.status == 200, await resp.text()
    second = await register("innovasjonsjam", person(2))
    [message] = await tap.wait_for("registration.confirmed", registration_id=second["id"])
    assert message["data"]["event"]["venue"] == "Sandvika storsenter"
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 3


async def test_a_service_told_to_stop_publishes_the_messages_of_what_it_answered_first(settings, http, tap,
                                                                                      admin_headers):
    server = TestServer(registration_app()(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    async with http.post(f"{base}/events", json=event_body(capacity=40), headers=admin_headers) as resp:
        assert resp.status == 201

    async def post(n: int) -> None:
        async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(n)) as resp:
            assert resp.status == 201

    await asyncio.gather(*(post(n) for n in range(30)))
    # Stopped as the last answers go out, while their messages are still being published: they go out before the
    # service lets go of the broker (no other instance's relay is there to publish them).
    await server.close()
    await tap.wait_for("registration.confirmed", 30, timeout_s=3)
