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
    assert taken["_id"] == first["_id"] and taken["attempts"] == 2 and taken["possible_copy"]  # it may have sent

    await store.release(first, now + 31, "late")  # the first sender's claim is no longer its own: nothing changes
    assert (await store.find_by_key("m1", mail))["status"] == "sending"
    await store.release(taken, now + 32, "SMTPServerDisconnected")  # transient: free to take at once
    [again] = await store.claim([("m1", mail)], now + 33, lease_s=30)
    assert again["attempts"] == 3 and again["last_error"] == "SMTPServerDisconnected"

    assert await store.finish(again, Status.sent, None, None, now + 34)
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
    await store.finish(sent, Status.sent, None, None, now)

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


async def test_a_take_over_takes_only_its_own_record_among_other_free_ones(settings, mongo_url):
    """nx-27017's findAndModify ignores filter conditions beside an `$or`: a take-over written that way took another
    mail's expired claim (issue 9). Two expired claims and a sent record: each claim takes exactly its own."""
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("notifications")])
    await store.ensure_indexes()
    [other], [own], [done] = plan(confirmed(address())), plan(confirmed(address())), plan(confirmed(address()))
    now = 1_800_000_000.0
    [other_claim], [own_claim], [done_claim] = [await store.claim([(m, mail)], now, lease_s=30)
                                               for m, mail in (("m-other", other), ("m-own", own), ("m-done", done))]
    await store.finish(done_claim, Status.sent, None, None, now + 1)

    assert await store.claim([("m-done", done)], now + 60, lease_s=30) == [None]  # sent: nothing taken, not another's
    [taken] = await store.claim([("m-own", own)], now + 60, lease_s=30)  # both other claims have expired
    assert (taken["_id"], taken["recipient"], taken["attempts"]) == (own_claim["_id"], own.recipient, 2)
    states = {doc["message_id"]: (doc["status"], doc["attempts"]) async for doc in store.notifications.find({})}
    assert states == {"m-other": ("sending", 1), "m-own": ("sending", 2), "m-done": ("sent", 1)}
    assert other_claim["attempts"] == 1
    await client.close()
