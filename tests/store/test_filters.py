"""Filters and reads, one test per form the code uses (and per divergent form it must not use)."""

from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument

from tests.store.conftest import expect

AFTER = ReturnDocument.AFTER
NOW = datetime(2026, 5, 1, 12, 0, 0, 125000, tzinfo=UTC)


async def ids(cursor) -> list:
    return [doc["_id"] for doc in await cursor.to_list()]


async def test_equality_in_nin_and_number_ranges(store):
    await store.x.insert_many([{"_id": i, "s": "ab"[i % 2], "n": i * 1.5} for i in range(6)])
    assert await ids(store.x.find({"s": "a", "n": {"$gt": 0, "$lte": 6}}).sort("_id")) == [2, 4]
    assert await ids(store.x.find({"_id": {"$in": [1, 3, 9]}, "s": {"$nin": ["a"]}}).sort("_id")) == [1, 3]
    assert await store.x.count_documents({"n": {"$gte": 3, "$lt": 6}}) == 2


async def test_array_membership_and_nin_on_arrays(store):
    await store.x.insert_many([{"_id": 1, "seats": ["r1", "r2"], "waitlist": []},
                               {"_id": 2, "seats": [], "waitlist": ["r1"]}])
    assert await ids(store.x.find({"seats": "r2"})) == [1]
    assert await ids(store.x.find({"seats": {"$nin": ["r1"]}, "waitlist": {"$nin": ["r3"]}})) == [2]


async def test_array_size_and_a_field_of_sub_documents_in_an_array(store):
    await store.x.insert_many([{"_id": 1, "outbox": [{"id": "e1"}]}, {"_id": 2, "outbox": [{"id": "e1"}, {"id": "e2"}]},
                               {"_id": 3, "outbox": []}])
    assert await ids(store.x.find({"outbox": {"$size": 1}, "outbox.id": "e1"})) == [1]
    assert await ids(store.x.find({"outbox.id": "e2"})) == [2]
    assert await ids(store.x.find({"outbox": {"$size": 0}})) == [3]


async def test_type_string(store):
    await store.x.insert_many([{"_id": 1, "ip": "10.0.0.1"}, {"_id": 2, "ip": None}, {"_id": 3}])
    assert await ids(store.x.find({"ip": {"$type": "string"}})) == [1]


async def test_datetime_ranges_on_inserted_datetimes_also_in_sub_documents(store):
    await store.x.insert_many([{"_id": i, "at": NOW + timedelta(hours=i), "schedule": {"ends_at": NOW + timedelta(hours=i)}}
                               for i in range(3)])
    assert await ids(store.x.find({"at": {"$gt": NOW}}).sort("_id")) == [1, 2]
    assert await ids(store.x.find({"schedule.ends_at": {"$lte": NOW + timedelta(hours=1)}}).sort("_id")) == [0, 1]
    assert (await store.x.find_one({"_id": 1}))["at"] == NOW + timedelta(hours=1)  # milliseconds, aware, kept


async def test_or_beside_other_conditions_in_find_and_count(store):
    await store.x.insert_many([{"_id": 1, "k": "a", "s": "r", "n": 1}, {"_id": 2, "k": "b", "s": "q", "n": 2}])
    query = {"k": "b", "$or": [{"s": "zz"}, {"s": "r", "n": 1}]}  # matches nothing: doc 1 has the wrong k
    assert await store.x.find(query).to_list() == []
    assert await store.x.count_documents(query) == 0


async def test_or_beside_other_conditions_in_writes(store):
    """The form of a claim: a key and `$or` of states (nx-27017 got a mail sent twice this way). Each write
    starts from the same two documents; the filter matches neither (doc 2's state fits, its key does not)."""
    query = {"key": "m1", "$or": [{"status": "retrying"}, {"status": "sending", "lease_ts": {"$lt": 5.0}}]}
    change = {"$set": {"lease_ts": 100.0}}

    async def hit(write) -> list:
        await store.x.delete_many({})
        await store.x.insert_many([{"_id": 1, "key": "m1", "status": "sent", "lease_ts": None},
                                   {"_id": 2, "key": "m2", "status": "sending", "lease_ts": 1.0}])
        await write
        return await ids(store.x.find({"$or": [{"lease_ts": 100.0}, {"_id": {"$nin": [1, 2]}}]}))

    wrong = "or_beside_conditions_in_writes"
    expect(store, await hit(store.x.find_one_and_update(query, change)), [], diverges=wrong, nx=[2])
    expect(store, await hit(store.x.update_one(query, change)), [], diverges=wrong, nx=[2])
    expect(store, await hit(store.x.update_many(query, change)), [], diverges=wrong, nx=[2])
    for delete in (store.x.delete_one, store.x.delete_many):
        await hit(delete(query))
        expect(store, await store.x.count_documents({}), 2, diverges=wrong, nx=1)


async def test_or_alone_in_find_and_modify_with_sort(store):
    """The form of taking the reminder due first."""
    await store.x.insert_many([{"_id": 1, "r": "scheduled", "due": 5}, {"_id": 2, "r": "scheduled", "due": 3},
                               {"_id": 3, "r": "sending", "lease": 100}, {"_id": 4, "r": "scheduled", "due": 50}])
    query = {"$or": [{"r": "scheduled", "due": {"$lte": 10}}, {"r": "sending", "lease": {"$lt": 10}}]}
    order = []
    while doc := await store.x.find_one_and_update(query, {"$set": {"r": "sending", "lease": 99}},
                                                   sort=[("due", ASCENDING)], return_document=AFTER):
        order.append(doc["_id"])
    assert order == [2, 1]


async def test_expr_beside_other_conditions(store):
    """Not used: free seats are a counter."""
    await store.x.insert_many([{"_id": "e1", "capacity": 2, "seats": ["a", "b"]},
                               {"_id": "e2", "capacity": 5, "seats": ["a"]}])
    query = {"_id": "e1", "$expr": {"$lt": [{"$size": "$seats"}, "$capacity"]}}
    expect(store, await ids(store.x.find(query)), [], diverges="expr_beside_conditions", nx=["e2"])


async def test_range_on_a_field_inside_an_array(store):
    """Not used: outbox entries are filtered by age in code."""
    await store.x.insert_one({"_id": 1, "outbox": [{"n": 5}]})
    expect(store, await store.x.count_documents({"outbox.n": {"$gt": 1}}), 1, diverges="range_inside_array", nx=0)


async def test_array_position_in_a_path(store):
    """Not used: the first in line is read, then matched by membership."""
    await store.x.insert_one({"_id": 1, "waitlist": ["r1", "r2"]})
    expect(store, await store.x.count_documents({"waitlist.0": "r1"}), 1, diverges="array_position_in_path", nx=0)


async def test_object_id_outside_id(store):
    """Not used: references are id strings."""
    oid = ObjectId()
    await store.x.insert_one({"_id": 1, "parent": oid})
    expect(store, await store.x.count_documents({"parent": oid}), 1, diverges="object_id_outside_id", nx=0)


async def test_compound_sort_limit_and_an_or_cursor(store):
    """A comments page sorted by reply count then position, after a cursor, within one thread."""
    await store.x.insert_many([{"_id": i, "thread": "t" if i < 8 else "u", "reply_count": i % 3,
                                "order": f"{i:02d}"} for i in range(10)])
    after = {"$or": [{"reply_count": {"$lt": 2}}, {"reply_count": 2, "order": {"$lt": "05"}}]}
    cursor = store.x.find({"thread": "t", **after}).sort([("reply_count", DESCENDING), ("order", DESCENDING)])
    assert await ids(cursor.limit(4)) == [2, 7, 4, 1]


async def test_sort_on_a_nested_field_and_by_id_after_a_cursor(store):
    await store.x.insert_many([{"_id": f"e{i}", "schedule": {"starts_at": NOW - timedelta(days=i)}} for i in range(4)])
    assert await ids(store.x.find().sort("schedule.starts_at", ASCENDING)) == ["e3", "e2", "e1", "e0"]
    assert await ids(store.x.find({"_id": {"$lt": "e2"}}).sort("_id", DESCENDING).limit(1)) == ["e1"]
    assert await ids(store.x.find({"_id": {"$gt": "e1"}}).sort("_id", ASCENDING)) == ["e2", "e3"]


async def test_object_id_ranges_on_id(store):
    first, second = ObjectId(), ObjectId()
    await store.x.insert_many([{"_id": first}, {"_id": second}])
    assert await ids(store.x.find({"_id": {"$lt": second}})) == [first]
    assert await store.x.find_one({"_id": second}) == {"_id": second}


async def test_aggregate_match_group_sum(store):
    await store.x.insert_many([{"thread": "ab"[i % 2], "status": "approved" if i < 5 else "pending"} for i in range(8)])
    cursor = await store.x.aggregate([{"$match": {"thread": {"$in": ["a", "b"]}, "status": "approved"}},
                                      {"$group": {"_id": "$thread", "n": {"$sum": 1}}}])
    assert sorted((row["_id"], row["n"]) for row in await cursor.to_list()) == [("a", 3), ("b", 2)]


async def test_projections_include_or_exclude(store):
    await store.x.insert_one({"_id": 1, "a": 1, "b": 2, "outbox": [{"id": "e"}]})
    assert await store.x.find_one({"_id": 1}, {"outbox": 0}) == {"_id": 1, "a": 1, "b": 2}
    assert await store.x.find_one({"_id": 1}, {"a": 1}) == {"_id": 1, "a": 1}
