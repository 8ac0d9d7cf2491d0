"""The claim that makes each mail go out once, against the real store: the states a record moves through."""

from pymongo import AsyncMongoClient

from services.notifications.domain import Status, plan
from services.notifications.store import Store

from .conftest import address, confirmed


async def test_a_claim_is_exclusive_until_its_lease_runs_out_and_final_once_sent(settings, mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("notifications")])
    await store.ensure_indexes()
    [mail] = plan(confirmed(address()))
    now = 1_800_000_000.0

    [first] = await store.claim([("m1", mail)], now, lease_s=30)
    assert first["status"] == "sending" and first["attempts"] == 1
    assert await store.claim([("m1", mail)], now + 29, lease_s=30) == [None]  # a competing replica backs off

    [taken] = await store.claim([("m1", mail)], now + 31, lease_s=30)  # the first sender crashed: its lease ran out
    assert taken["_id"] == first["_id"] and taken["attempts"] == 2

    await store.release(taken["_id"], now + 32, "SMTPServerDisconnected")  # transient: free to take at once
    [again] = await store.claim([("m1", mail)], now + 33, lease_s=30)
    assert again["attempts"] == 3 and again["last_error"] == "SMTPServerDisconnected"

    await store.finish([(again["_id"], Status.sent, None, None)], now + 34)
    assert await store.claim([("m1", mail)], now + 1000, lease_s=30) == [None]  # sent is final
    assert (await store.find_by_key("m1", mail))["status"] == "sent"
    [other] = await store.claim([("m2", mail)], now, lease_s=30)  # another message to the same person is its own mail
    assert other["_id"] != first["_id"]
    await client.close()


async def test_a_batch_of_claims_is_one_write_that_skips_mails_already_claimed_or_twice_in_it(settings, mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("notifications")])
    await store.ensure_indexes()
    [a], [b] = plan(confirmed(address())), plan(confirmed(address()))
    now = 1_800_000_000.0
    [sent] = await store.claim([("m1", a)], now, lease_s=30)
    await store.finish([(sent["_id"], Status.sent, None, None)], now)

    fresh, done, same, twice = await store.claim([("m2", a), ("m1", a), ("m1", b), ("m1", b)], now + 1, lease_s=30)
    assert fresh["message_id"] == "m2" and same["recipient"] == b.recipient
    assert done is None and twice is None  # sent already; the same mail earlier in the batch holds it
    assert await client[settings.db_name("notifications")]["notifications"].count_documents({}) == 3
    await client.close()


async def test_attendee_states_in_one_write_keep_the_newest_whatever_their_order(settings, mongo_url):
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("notifications")])
    await store.ensure_indexes()
    assert await store.remember_attendees([("r1", {"status": "confirmed"}, 5.0)]) == [True]

    kept = await store.remember_attendees([("r1", {"status": "waitlisted"}, 3.0), ("r2", {"status": "pending"}, 3.0),
                                           ("r1", {"status": "cancelled"}, 7.0)])
    assert kept == [False, True, True]  # the state of time 3 arrived after that of time 5
    states = {doc["_id"]: doc["status"] async for doc in store.attendees.find({})}
    assert states == {"r1": "cancelled", "r2": "pending"}
    await client.close()


async def test_indexes_of_an_earlier_version_that_no_query_uses_are_dropped(settings, mongo_url):
    client = AsyncMongoClient(mongo_url)
    store = Store(client[settings.db_name("notifications")])
    await store.notifications.create_index("kind")
    await store.notifications.create_index("status")
    await store.ensure_indexes()
    await store.ensure_indexes()  # again, with nothing left to drop
    keys = {tuple(index["key"]) async for index in await store.notifications.list_indexes()}
    assert {("recipient",), ("event_slug",)} <= keys and not keys & {("kind",), ("status",)}
    await client.close()
