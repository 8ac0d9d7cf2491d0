"""The hot path's group commit against the real store and broker: a batch of concurrent registrations shares one
write on the event, one insert and one outbox removal, and still keeps every rule of a single registration."""

import asyncio

from pymongo import AsyncMongoClient

from tests.conftest import free_port

from .conftest import person, registration_app


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


async def test_published_entries_are_removed_from_every_registration_of_a_batch(settings, base, tap, create_event,
                                                                              register):
    await create_event(capacity=10)
    created = await asyncio.gather(*(register("innovasjonsjam", person(n)) for n in range(8)))
    await tap.wait_for("registration.confirmed", 8)
    docs = await stored(settings, "registrations", {"_id": {"$in": [r["id"] for r in created]}})
    assert len(docs) == 8 and all(doc["outbox"] == [] for doc in docs)
