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

    first = await store.claim("m1", mail, now, lease_s=30)
    assert first["status"] == "sending" and first["attempts"] == 1
    assert await store.claim("m1", mail, now + 29, lease_s=30) is None  # a competing replica backs off

    taken = await store.claim("m1", mail, now + 31, lease_s=30)  # the first sender crashed: its lease ran out
    assert taken["_id"] == first["_id"] and taken["attempts"] == 2

    await store.release(taken["_id"], now + 32, "SMTPServerDisconnected")  # transient: free to take at once
    again = await store.claim("m1", mail, now + 33, lease_s=30)
    assert again["attempts"] == 3 and again["last_error"] == "SMTPServerDisconnected"

    await store.finish(again["_id"], Status.sent, now + 34)
    assert await store.claim("m1", mail, now + 1000, lease_s=30) is None  # sent is final
    assert (await store.find_by_key("m1", mail))["status"] == "sent"
    other = await store.claim("m2", mail, now, lease_s=30)  # another message to the same person is its own mail
    assert other["_id"] != first["_id"]
    await client.close()
