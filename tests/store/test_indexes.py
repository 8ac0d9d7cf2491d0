"""Indexes: unique, unique partial, TTL, sparse; what they refuse and how they are listed and dropped."""

from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.mongo import duplicates_in
from tests.store.conftest import expect

FINGERPRINT = [("thread_id", ASCENDING), ("fingerprint", ASCENDING)]


async def test_a_unique_compound_index_refuses_the_second(store):
    await store.x.create_index([("event", ASCENDING), ("email", ASCENDING)], unique=True)
    await store.x.insert_one({"event": "e", "email": "a@example.no"})
    await store.x.insert_one({"event": "f", "email": "a@example.no"})
    with pytest.raises(DuplicateKeyError):
        await store.x.insert_one({"event": "e", "email": "a@example.no"})


async def test_an_unordered_insert_many_writes_all_but_the_duplicates(store):
    await store.x.create_index("code", unique=True)
    await store.x.insert_one({"code": "b"})
    refused = await duplicates_in(store.x.insert_many([{"code": c} for c in "abcb"], ordered=False))
    assert refused == {1, 3}
    assert sorted(doc["code"] for doc in await store.x.find().to_list()) == ["a", "b", "c"]


async def test_an_unordered_insert_many_reports_a_taken_id_as_a_duplicate(store):
    """A comment imported again: its id, derived from the export, is taken; the others are written."""
    await store.x.insert_one({"_id": "a", "n": 0})
    refused = await duplicates_in(store.x.insert_many([{"_id": i, "n": 1} for i in "bac"], ordered=False))
    assert refused == {1}
    assert await store.x.find().sort("_id").to_list() == [{"_id": "a", "n": 0}, {"_id": "b", "n": 1},
                                                          {"_id": "c", "n": 1}]


async def test_a_unique_partial_index_binds_only_documents_with_the_field(store):
    await store.x.create_index(FINGERPRINT, unique=True, partialFilterExpression={"fingerprint": {"$exists": True}})
    await store.x.insert_many([{"_id": 1, "thread_id": "t"}, {"_id": 2, "thread_id": "t"},
                               {"_id": 3, "thread_id": "t", "fingerprint": "f"}, {"_id": 4, "thread_id": "u",
                                                                               "fingerprint": "f"}])
    with pytest.raises(BulkWriteError):
        await store.x.insert_many([{"_id": 5, "thread_id": "t", "fingerprint": "f"}])
    await store.x.update_one({"_id": 3}, {"$unset": {"fingerprint": ""}})  # a deleted comment gives its text back
    await store.x.insert_one({"_id": 5, "thread_id": "t", "fingerprint": "f"})


async def test_an_update_one_that_would_break_a_unique_index_raises(store):
    await store.x.create_index(FINGERPRINT, unique=True, partialFilterExpression={"fingerprint": {"$exists": True}})
    await store.x.insert_many([{"_id": 1, "thread_id": "t", "fingerprint": "a"},
                               {"_id": 2, "thread_id": "t", "fingerprint": "b"}])
    with pytest.raises(DuplicateKeyError):
        await store.x.update_one({"_id": 2}, {"$set": {"fingerprint": "a"}})
    assert (await store.x.find_one({"_id": 2}))["fingerprint"] == "b"


async def test_a_find_and_modify_that_would_break_a_unique_index(store):
    """Used by no store as its only check: nx-27017 answers as if nothing matched."""
    await store.x.create_index(FINGERPRINT, unique=True, partialFilterExpression={"fingerprint": {"$exists": True}})
    await store.x.insert_many([{"_id": 1, "thread_id": "t", "fingerprint": "a"},
                               {"_id": 2, "thread_id": "t", "fingerprint": "b"}])
    try:
        outcome = await store.x.find_one_and_update({"_id": 2}, {"$set": {"fingerprint": "a"}},
                                                    return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:
        outcome = "duplicate key error"
    expect(store, outcome, "duplicate key error", diverges="duplicate_key_in_find_and_modify", nx=None)
    assert (await store.x.find_one({"_id": 2}))["fingerprint"] == "b"


async def test_ttl_and_sparse_indexes_are_made_and_dropped_by_their_keys(store):
    """A TTL index removes a document once its date is past (MongoDB checks every 60 s, so this test only reads the
    index back); indexes are found by their keys, as shared.mongo.drop_retired_indexes does."""
    await store.x.create_index("expires_at", expireAfterSeconds=0)
    await store.db["y"].create_index("expires.at", expireAfterSeconds=3600)
    await store.x.create_index("claim_ts", sparse=True)
    await store.x.insert_one({"expires_at": datetime.now(UTC)})
    await store.db["y"].insert_one({"expires": {"at": datetime.now(UTC)}})
    listed = {tuple(index["key"].items()): index async for index in await store.x.list_indexes()}
    assert listed[(("expires_at", 1),)]["expireAfterSeconds"] == 0
    assert [i.get("expireAfterSeconds") async for i in await store.db["y"].list_indexes() if "_id" not in i["key"]
            ] == [3600]
    expect(store, (listed[(("claim_ts", 1),)].get("sparse"), listed[(("claim_ts", 1),)]["name"]),
           (True, "claim_ts_1"), diverges="index_listing", nx=(None, "idx_x_claim_ts"))
    await store.x.drop_index([("claim_ts", ASCENDING)])
    assert (("claim_ts", 1),) not in {tuple(i["key"].items()) async for i in await store.x.list_indexes()}


async def test_a_compound_index_on_id(store):
    """Not used: comments sort by `order`, a copy of their id."""
    try:
        await store.x.create_index([("_id", ASCENDING), ("thread_id", ASCENDING)])
        await store.x.insert_many([{"_id": 1, "thread_id": "t"}, {"_id": 2, "thread_id": "t"}])
        outcome = await store.x.count_documents({})
    except Exception as exc:  # noqa: BLE001 - what nx-27017 answers is the point
        outcome = type(exc).__name__
    expect(store, outcome, 2, diverges="compound_index_on_id", nx="BulkWriteError")
