"""Updates, upserts and bulk writes, one test per form the code uses (and per divergent form it must not use)."""

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from shared.mongo import DUPLICATE_KEY
from tests.store.conftest import expect

AFTER = ReturnDocument.AFTER
NOW = datetime(2026, 5, 1, 12, 0, 0, 125000, tzinfo=UTC)


async def test_compare_and_set_with_set_unset_inc_returning_the_document_after(store):
    await store.x.insert_one({"_id": "e", "version": 3, "free": 2, "a": 1, "outbox": []})
    after = await store.x.find_one_and_update({"_id": "e", "version": 3, "free": {"$gte": 2}},
                                              {"$set": {"b": 2}, "$unset": {"a": ""}, "$inc": {"version": 1, "free": -2}},
                                              projection={"outbox": 0}, return_document=AFTER)
    assert after == {"_id": "e", "version": 4, "free": 0, "b": 2}
    assert await store.x.find_one_and_update({"_id": "e", "version": 3}, {"$inc": {"version": 1}}) is None


async def test_push_scalars_pull_and_move_between_arrays(store):
    """Seats and the waiting list: take, place a batch, move, give back."""
    await store.x.insert_one({"_id": "e", "free": 1, "seats": [], "waitlist": []})
    first = await store.x.find_one_and_update({"_id": "e", "free": {"$gt": 0}, "seats": {"$nin": ["r1"]}},
                                              {"$push": {"seats": "r1"}, "$inc": {"free": -1}}, return_document=AFTER)
    assert first["seats"] == ["r1"] and first["free"] == 0
    assert await store.x.find_one_and_update({"_id": "e", "free": {"$gt": 0}}, {"$push": {"seats": "r2"}}) is None
    await store.x.update_one({"_id": "e"}, {"$push": {"waitlist": {"$each": ["r2", "r3"]}, "seats": {"$each": []}}})
    moved = await store.x.find_one_and_update(
        {"_id": "e", "waitlist": "r2"}, {"$pull": {"waitlist": "r2"}, "$push": {"seats": "r2"}}, return_document=AFTER)
    assert (moved["seats"], moved["waitlist"]) == (["r1", "r2"], ["r3"])
    await store.x.update_one({"_id": "e"}, {"$push": {"token_hashes": "h1"}})  # creates the missing array
    assert (await store.x.find_one({"_id": "e"}))["token_hashes"] == ["h1"]


async def test_push_of_a_sub_document(store):
    """Not used: outbox entries are appended with $addToSet."""
    await store.x.insert_one({"_id": 1, "outbox": []})
    await store.x.update_one({"_id": 1}, {"$push": {"outbox": {"id": "e1"}}})
    got = (await store.x.find_one({"_id": 1}))["outbox"]
    expect(store, got, [{"id": "e1"}], diverges="push_subdocument", nx=['{"id":"e1"}'])


async def test_add_to_set_each_of_sub_documents_with_min(store):
    """The outbox append: entries with their datetimes, and the earliest due mark."""
    await store.x.insert_one({"_id": 1, "outbox": []})
    for due in (7.5, 5.5):
        await store.x.update_one({"_id": 1}, {"$addToSet": {"outbox": {"$each": [{"id": "e1", "created_at": NOW}]}},
                                              "$min": {"due": due}})
    await store.x.update_one({"_id": 1}, {"$addToSet": {"outbox": {"$each": [{"id": "e2", "created_at": NOW}]}}})
    assert await store.x.find_one({"_id": 1}) == {
        "_id": 1, "outbox": [{"id": "e1", "created_at": NOW}, {"id": "e2", "created_at": NOW}], "due": 5.5}


async def test_add_to_set_on_a_missing_array(store):
    """Not used: documents are created with their outbox array."""
    await store.x.insert_one({"_id": 1})
    await store.x.update_one({"_id": 1}, {"$addToSet": {"outbox": {"$each": [{"id": "e1"}]}}})
    got = (await store.x.find_one({"_id": 1})).get("outbox")
    expect(store, got, [{"id": "e1"}], diverges="add_to_set_missing_array", nx=None)


async def test_pull_sub_documents_by_a_condition_from_many(store):
    await store.x.insert_many([{"_id": 1, "outbox": [{"id": "e1"}, {"id": "e2"}]}, {"_id": 2, "outbox": [{"id": "e3"}]}])
    result = await store.x.update_many({"_id": {"$in": [1, 2]}}, {"$pull": {"outbox": {"id": {"$in": ["e1", "e3"]}}}})
    assert result.modified_count == 2
    assert await store.x.find().sort("_id").to_list() == [{"_id": 1, "outbox": [{"id": "e2"}]}, {"_id": 2, "outbox": []}]


async def test_datetimes_written_by_update_operators(store):
    """Changing times are kept as numbers or in a sub-document set whole (an event's schedule)."""
    await store.x.insert_one({"_id": 1})
    await store.x.update_one({"_id": 1}, {"$set": {"schedule": {"starts_at": NOW}, "times": [NOW]}})
    doc = await store.x.find_one({"_id": 1})
    assert (doc["schedule"], doc["times"]) == ({"starts_at": NOW}, [NOW])
    await store.x.update_one({"_id": 1}, {"$set": {"edited_at": NOW}, "$min": {"first_at": NOW}})
    doc = await store.x.find_one({"_id": 1})
    as_string = str(NOW.replace(tzinfo=None))
    expect(store, doc["edited_at"], NOW, diverges="datetime_by_update_operator", nx=as_string)
    expect(store, doc["first_at"], NOW, diverges="datetime_by_update_operator", nx=as_string)


async def test_booleans_written_by_update_operators(store):
    """Flags changed after a comment is written (`listed`, a thread's `closed` and `hidden`) are found by equality
    on both, and read back as booleans by the comments store's from_doc. Types are compared: 1 == True in Python."""
    await store.x.insert_one({"_id": 1, "inserted": True})
    await store.x.update_one({"_id": 1}, {"$set": {"b": True, "c": False, "sub": {"d": True}, "list": [True]}})
    doc = await store.x.find_one({"_id": 1})
    assert (doc["inserted"], doc["sub"], doc["list"]) == (True, {"d": True}, [True])
    assert type(doc["inserted"]) is bool and type(doc["sub"]["d"]) is bool and type(doc["list"][0]) is bool
    assert await store.x.count_documents({"b": True, "c": False}) == 1
    expect(store, [(type(doc[k]), doc[k]) for k in "bc"], [(bool, True), (bool, False)],
           diverges="boolean_by_update_operator", nx=[(int, 1), (int, 0)])


async def test_upsert_by_update_one_with_set_on_insert(store):
    """A thread made on its first comment; a bulk of rate-limit windows."""
    for _ in range(2):
        await store.x.update_one({"_id": "t"}, {"$setOnInsert": {"created_at": NOW}}, upsert=True)
    assert await store.x.find_one({"_id": "t"}) == {"_id": "t", "created_at": NOW}
    await store.x.insert_one({"_id": "old", "count": 4})
    result = await store.x.bulk_write(
        [UpdateOne({"_id": key}, {"$inc": {"count": n}, "$setOnInsert": {"expires_at": NOW}}, upsert=True)
         for key, n in (("new", 2), ("old", 1))], ordered=False)
    assert result.upserted_ids == {0: "new"}
    assert await store.x.find({"_id": {"$in": ["new", "old"]}}).sort("_id").to_list() == [
        {"_id": "new", "count": 2, "expires_at": NOW}, {"_id": "old", "count": 5}]


async def test_set_on_insert_in_a_find_and_modify_upsert(store):
    """Not used: a find-and-modify upsert takes what a new document needs from its equality filter."""
    doc = await store.x.find_one_and_update({"_id": "w"}, {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": NOW}},
                                            upsert=True, return_document=AFTER)
    expect(store, doc, {"_id": "w", "count": 1, "expires_at": NOW}, diverges="set_on_insert_in_find_and_modify",
           nx={"_id": "w", "count": 1})


async def test_find_and_modify_upsert_takes_the_equality_fields_of_its_filter(store):
    """A rate-limit window: created with its expiry (a datetime, for the TTL index), counted after."""
    counts = []
    for _ in range(3):
        doc = await store.x.find_one_and_update({"_id": "k:60", "expires_at": NOW}, {"$inc": {"count": 1}},
                                                upsert=True, return_document=AFTER)
        counts.append(doc["count"])
    assert counts == [1, 2, 3]
    assert await store.x.find_one({"_id": "k:60"}) == {"_id": "k:60", "expires_at": NOW, "count": 3}
    result = await store.x.bulk_write([UpdateOne({"_id": "k:120", "expires_at": NOW}, {"$inc": {"count": 2}},
                                                 upsert=True)])
    assert result.upserted_ids == {0: "k:120"}
    assert await store.x.find_one({"_id": "k:120"}) == {"_id": "k:120", "expires_at": NOW, "count": 2}


async def test_an_upsert_whose_filter_misses_an_existing_id_is_a_duplicate_key(store):
    """Keeping the newest state: an older one (filter on as_of misses) is refused, the others written."""
    await store.x.insert_one({"_id": "r1", "as_of": 5})
    with pytest.raises(BulkWriteError) as caught:
        await store.x.bulk_write([UpdateOne({"_id": rid, "as_of": {"$lte": as_of}}, {"$set": {"as_of": as_of}},
                                            upsert=True) for rid, as_of in (("r1", 3), ("r2", 4))], ordered=False)
    assert [(e["index"], e["code"]) for e in caught.value.details["writeErrors"]] == [(0, DUPLICATE_KEY)]
    assert await store.x.find().sort("_id").to_list() == [{"_id": "r1", "as_of": 5}, {"_id": "r2", "as_of": 4}]


async def test_bulk_compare_and_set_reports_how_many_matched(store):
    await store.x.insert_many([{"_id": "a", "v": 1, "seats": []}, {"_id": "b", "v": 1, "seats": []}])
    result = await store.x.bulk_write([
        UpdateOne({"_id": "a", "v": 1}, {"$push": {"seats": {"$each": ["r1", "r2"]}}, "$inc": {"v": 1}}),
        UpdateOne({"_id": "b", "v": 0}, {"$push": {"seats": {"$each": ["r3"]}}, "$inc": {"v": 1}})], ordered=False)
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert await store.x.find().sort("_id").to_list() == [{"_id": "a", "v": 2, "seats": ["r1", "r2"]},
                                                          {"_id": "b", "v": 1, "seats": []}]


async def test_bulk_update_many_each_on_the_documents_as_they_were(store):
    """Cancelling a møteplass: each status marked apart, keeping what it was."""
    await store.x.insert_many([{"_id": i, "status": "confirmed" if i % 2 else "waitlisted"} for i in range(4)])
    result = await store.x.bulk_write([UpdateMany({"status": s}, {"$set": {"status": "cancelling", "was": s}})
                                       for s in ("confirmed", "waitlisted")])
    assert result.modified_count == 4
    assert [doc["was"] for doc in await store.x.find().sort("_id").to_list()] == [
        "waitlisted", "confirmed", "waitlisted", "confirmed"]


async def test_update_many_delete_many_and_delete_one_count_what_they_did(store):
    await store.x.insert_many([{"_id": i, "ip": f"10.0.0.{i}", "status": "p" if i < 3 else "c"} for i in range(5)])
    assert (await store.x.update_many({"_id": {"$lt": 2}}, {"$unset": {"ip": ""}})).modified_count == 2
    assert (await store.x.delete_one({"_id": 3, "status": "p"})).deleted_count == 0
    assert (await store.x.delete_one({"_id": 3, "status": "c"})).deleted_count == 1
    assert (await store.x.delete_many({"status": "p"})).deleted_count == 3
    assert await store.x.find().to_list() == [{"_id": 4, "ip": "10.0.0.4", "status": "c"}]


async def test_a_date_written_by_current_date(store):
    """Not used: times are written by inserts, as Unix seconds or in a sub-document."""
    await store.x.insert_one({"_id": 1})
    await store.x.update_one({"_id": 1}, {"$currentDate": {"edited_at": True}})
    edited_at = (await store.x.find_one({"_id": 1}))["edited_at"]
    assert isinstance(edited_at, datetime)
    found = await store.x.count_documents({"edited_at": {"$gt": edited_at - timedelta(days=1)}})
    expect(store, found, 1, diverges="current_date_not_comparable", nx=0)
