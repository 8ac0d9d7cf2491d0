"""All MongoDB access of the registration service. Every change is one single-document atomic write: the event
document holds who has a seat (`seats`) and who waits (`waitlist`, in arrival order); a registration document
holds the person, its status and the outbox of messages its changes caused.

Written to work the same on MongoDB and on nx-27017 0.8.1, which differs in three places: array membership is
tested with $nin (nx-27017 matches `{array: {$ne: x}}` wrongly in updates), the time of the last change is kept as a number,
`updated_ts` in Unix seconds (nx-27017 stores a $set datetime as a string, and a $currentDate one compares with
nothing), and outbox entries are appended with $addToSet (see shared.outbox.add)."""

import time
from collections.abc import AsyncIterator
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import outbox

from .domain import Status

AFTER = ReturnDocument.AFTER


class Duplicate(Exception):
    pass


class Store:
    def __init__(self, db: AsyncDatabase):
        self.events = db["events"]
        self.registrations = db["registrations"]

    async def ensure_indexes(self) -> None:
        # One registration per email and møteplass: the store refuses the second, however many instances run.
        await self.registrations.create_index([("event_slug", 1), ("email", 1)], unique=True)
        await self.registrations.create_index([("status", 1), ("updated_ts", 1)])

    # Events

    async def insert_event(self, doc: dict, entries: list[dict]) -> None:
        try:
            await self.events.insert_one({**doc, "seats": [], "waitlist": [], outbox.FIELD: entries})
        except DuplicateKeyError as exc:
            raise Duplicate from exc

    async def event(self, slug: str) -> dict | None:
        return await self.events.find_one({"_id": slug}, {outbox.FIELD: 0})

    async def events_list(self) -> list[dict]:
        return await self.events.find({}, {outbox.FIELD: 0}).sort("starts_at", 1).to_list()

    async def upcoming_slugs(self, now: datetime) -> list[str]:
        return [doc["_id"] for doc in await self.events.find({"ends_at": {"$gt": now}}, {"_id": 1}).to_list()]

    async def take_seat(self, slug: str, rid: str) -> dict | None:
        """Give rid a seat if one is free; None when full (or rid already placed)."""
        return await self.events.find_one_and_update(
            {"_id": slug, "seats": {"$nin": [rid]}, "waitlist": {"$nin": [rid]},
             "$expr": {"$lt": [{"$size": "$seats"}, "$capacity"]}},
            {"$push": {"seats": rid}}, projection={"seats": 1, "waitlist": 1}, return_document=AFTER)

    async def join_waitlist(self, slug: str, rid: str) -> dict | None:
        return await self.events.find_one_and_update(
            {"_id": slug, "seats": {"$nin": [rid]}, "waitlist": {"$nin": [rid]}},
            {"$push": {"waitlist": rid}}, projection={"seats": 1, "waitlist": 1}, return_document=AFTER)

    async def release(self, slug: str, rid: str) -> dict | None:
        """Give back rid's seat or waiting-list place (idempotent); returns the event after."""
        return await self.events.find_one_and_update(
            {"_id": slug}, {"$pull": {"seats": rid, "waitlist": rid}}, projection={outbox.FIELD: 0},
            return_document=AFTER)

    async def promote(self, slug: str, rid: str) -> dict | None:
        """Move rid from the head of the waiting list to a seat, if it is still first and a seat is still free."""
        return await self.events.find_one_and_update(
            {"_id": slug, "waitlist.0": rid, "$expr": {"$lt": [{"$size": "$seats"}, "$capacity"]}},
            {"$pop": {"waitlist": -1}, "$push": {"seats": rid}}, projection={outbox.FIELD: 0}, return_document=AFTER)

    # Registrations

    async def insert_registration(self, doc: dict) -> None:
        try:
            await self.registrations.insert_one({**doc, "updated_ts": time.time(), outbox.FIELD: []})
        except DuplicateKeyError as exc:
            raise Duplicate from exc

    async def registration(self, rid: str) -> dict | None:
        return await self.registrations.find_one({"_id": rid}, {outbox.FIELD: 0})

    async def transition(self, rid: str, expected: tuple[Status, ...], changes: dict, entries: list[dict],
                         token_hash: str | None = None) -> dict | None:
        """Move a registration on from one of the `expected` statuses, recording the messages this causes (and
        the hash of the token their link carries) in the same write; None when it was no longer in one of them
        (another flow got there first)."""
        update = {"$set": {**changes, "updated_ts": time.time()}, **outbox.add(entries)}
        if token_hash:
            update["$push"] = {"token_hashes": token_hash}
        return await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": [s.value for s in expected]}}, update,
            projection={outbox.FIELD: 0}, return_document=AFTER)

    async def stuck(self, statuses: tuple[Status, ...], before: datetime) -> AsyncIterator[dict]:
        """Registrations left in a short-lived status by a flow that did not finish."""
        cursor = self.registrations.find(
            {"status": {"$in": [s.value for s in statuses]}, "updated_ts": {"$lte": before.timestamp()}},
            {outbox.FIELD: 0})
        async for doc in cursor:
            yield doc

    async def waitlisted_among(self, rids: list[str]) -> list[dict]:
        """Of these seat holders, those whose registration does not know it yet (a promotion cut short)."""
        return await self.registrations.find(
            {"_id": {"$in": rids}, "status": Status.waitlisted.value}, {outbox.FIELD: 0}).to_list()
