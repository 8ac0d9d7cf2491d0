"""All MongoDB access of the registration service. Every change is one single-document atomic write: the event
document holds who has a seat (`seats`) and who waits (`waitlist`, in arrival order); a registration document
holds the person, its status and the outbox of messages its changes caused. Every write that changes `seats` or
`waitlist` (or `free`) increments `places_version`, as every admin change increments `version`: an event unchanged
since it was read is then known by these two and `free`, which lets the hot path write without reading back.

Written to work the same on MongoDB and on nx-27017 0.8.1, which differs in a few places, so this module uses
only what both do alike: free seats are a counter (`free`) instead of an $expr on the array sizes (nx-27017
ignores the rest of a filter holding $expr), array membership is tested with {array: x} and $nin (not $ne, nor
positions like "waitlist.0"), the time of the last change is kept as a number, `updated_ts` in Unix seconds
(nx-27017 stores a $set datetime as a string), an event's times live in a sub-document replaced whole, and outbox
entries are appended with $addToSet (see shared.outbox.add)."""

import time
from collections.abc import AsyncIterator
from datetime import datetime

from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import outbox
from shared.mongo import drop_retired_indexes, duplicates_in

from . import domain
from .domain import EventStatus, Status

AFTER = ReturnDocument.AFTER
SCHEDULE = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
NO_OUTBOX = {outbox.FIELD: 0}


def _stored(event: dict) -> dict:
    return {**{k: v for k, v in event.items() if k not in SCHEDULE}, "schedule": {k: event.get(k) for k in SCHEDULE}}


def _read(doc: dict | None) -> dict | None:
    if doc is not None and "schedule" in doc:
        doc.update(doc.pop("schedule"))
    return doc


class Duplicate(Exception):
    pass


class Store:
    def __init__(self, db: AsyncDatabase):
        self.events = db["events"]
        self.registrations = db["registrations"]
        self.invites = db["guest_invites"]
        self.requests = db["idempotent_requests"]

    async def ensure_indexes(self) -> None:
        # One live registration per email and møteplass: the store refuses the second, however many instances
        # run. `live_email` is the address while the registration holds it; a cancelled or erased one lets go, so
        # the person may register again.
        await self.registrations.create_index([("event_slug", 1), ("live_email", 1)], unique=True,
                                              partialFilterExpression={"live_email": {"$exists": True}})
        await self._hold_live_emails()
        await drop_retired_indexes(self.registrations, [[("event_slug", 1), ("email", 1)]])
        await self.registrations.create_index([("status", 1), ("updated_ts", 1)])
        await self.invites.create_index("code_hash", unique=True)
        await self.invites.create_index("claim_ts", sparse=True)
        await self.requests.create_index("expires.at", expireAfterSeconds=0)

    async def _hold_live_emails(self) -> None:
        """Registrations stored before `live_email` existed (unique on the email itself) hold it from now on."""
        released = [Status.cancelled.value, Status.erased.value]
        async for doc in self.registrations.find({"live_email": {"$exists": False}, "status": {"$nin": released}},
                                                 {"email": 1}):
            await self.registrations.update_one({"_id": doc["_id"]}, {"$set": {"live_email": doc["email"]}})

    # Events

    async def insert_event(self, doc: dict, entries: list[dict]) -> None:
        try:
            await self.events.insert_one({**_stored(doc), "seats": [], "waitlist": [], "free": doc["capacity"],
                                          "version": 0, "places_version": 0, "personal_data": "kept",
                                          **outbox.holding(entries)})
        except DuplicateKeyError as exc:
            raise Duplicate from exc

    async def event(self, slug: str) -> dict | None:
        return _read(await self.events.find_one({"_id": slug}, NO_OUTBOX))

    async def listed_events(self) -> list[dict]:
        """The public list: drafts stay out."""
        cursor = self.events.find({"status": {"$in": [EventStatus.published.value, EventStatus.cancelled.value]}},
                                  NO_OUTBOX)
        return [_read(doc) for doc in await cursor.sort("schedule.starts_at", 1).to_list()]

    async def upcoming_events(self, now: datetime) -> list[dict]:
        cursor = self.events.find({"schedule.ends_at": {"$gt": now}}, NO_OUTBOX)
        return [_read(doc) for doc in await cursor.to_list()]

    async def update_event(self, event: dict, changed: dict, entries: list[dict]) -> dict | None:
        """Write an admin's change unless the event changed meanwhile, or the capacity would fall below the seats
        held; None then."""
        after = {**event, **changed}
        fields = {k: v for k, v in _stored(after).items() if k in changed or k == "schedule"}
        query = {"_id": event["_id"], "version": event["version"]}
        increments = {"version": 1}
        if "capacity" in changed:
            more = changed["capacity"] - event["capacity"]
            increments["free"] = more
            if more < 0:
                query["free"] = {"$gte": -more}
        return _read(await self.events.find_one_and_update(
            query, {"$set": fields, "$inc": increments, **outbox.add(entries)}, projection=NO_OUTBOX,
            return_document=AFTER))

    async def take_places(self, batches: dict[str, tuple[dict, list[str], list[str]]]) -> dict[str, dict]:
        """Give batches of new registrations their places, per event slug (the event as last read, seated,
        waiting): in one write on each event, if it is open and unchanged since that read (compare-and-set), seats
        to `seated` and the waiting list to `waiting`, each in its order. One round trip for all the events.
        Returns each event as it is after: when every write landed, as the read plus these writes (exact, since
        nothing else changed it); otherwise read back, for domain.batch_landed to tell whose batch landed."""
        writes, after = [], {}
        for slug, (event, seated, waiting) in batches.items():
            changes = 1 if seated or waiting else 0  # nothing to place (full): only the check
            writes.append(UpdateOne(
                {"_id": slug, "status": EventStatus.published.value, "free": event["free"],
                 "version": event["version"], "places_version": event.get("places_version")},
                {"$push": {"seats": {"$each": seated}, "waitlist": {"$each": waiting}},
                 "$inc": {"free": -len(seated), "places_version": changes}}))
            after[slug] = {**event, "seats": event["seats"] + seated, "waitlist": event["waitlist"] + waiting,
                           "free": event["free"] - len(seated),
                           "places_version": event.get("places_version", 0) + changes}
        result = await self.events.bulk_write(writes, ordered=False)
        if result.matched_count == len(writes):
            return after
        return {doc["_id"]: _read(doc) for doc in await self.events.find({"_id": {"$in": list(batches)}},
                                                                         NO_OUTBOX).to_list()}

    async def release(self, slug: str, rid: str) -> dict | None:
        """Give back rid's seat or waiting-list place (idempotent); returns the event after."""
        for held, update in (("seats", {"$pull": {"seats": rid}, "$inc": {"free": 1, "places_version": 1}}),
                             ("waitlist", {"$pull": {"waitlist": rid}, "$inc": {"places_version": 1}})):
            if event := await self.events.find_one_and_update({"_id": slug, held: rid}, update,
                                                              projection=NO_OUTBOX, return_document=AFTER):
                return _read(event)
        return await self.event(slug)

    async def promote(self, slug: str, rid: str) -> dict | None:
        """Move rid from the waiting list to a seat, if it is still waiting and a seat is still free. The caller
        passes the first in line: no one is ever put before it, so while it waits it is still first."""
        return _read(await self.events.find_one_and_update(
            {"_id": slug, "free": {"$gt": 0}, "waitlist": rid},
            {"$pull": {"waitlist": rid}, "$push": {"seats": rid}, "$inc": {"free": -1, "places_version": 1}},
            projection=NO_OUTBOX,
            return_document=AFTER))

    # Registrations

    async def insert_registrations(self, batch: list[tuple[dict, list[dict]]]) -> list[bool]:
        """Store registrations, each with its outbox entries, in one round trip; says of each whether it was
        stored (False: that email is already registered for the event, the others are stored all the same)."""
        ts = time.time()
        duplicates = await duplicates_in(self.registrations.insert_many(
            [{**doc, "live_email": doc["email"], "updated_ts": ts, **outbox.holding(entries)}
             for doc, entries in batch], ordered=False))
        return [i not in duplicates for i in range(len(batch))]

    async def delete_registration(self, rid: str, status: Status) -> None:
        await self.registrations.delete_one({"_id": rid, "status": status.value})

    async def confirm_email(self, rid: str, now: datetime) -> dict | None:
        """pending_confirmation → allocating, if the link has not expired."""
        return await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(Status.allocating)}, "expires_at": {"$gt": now}},
            {"$set": {"status": Status.allocating.value, "updated_ts": time.time()}, "$unset": {"expires_at": ""}},
            projection=NO_OUTBOX, return_document=AFTER)

    async def delete_expired_pending(self, now: datetime) -> int:
        # Unconfirmed registrations hold nothing; their messages went out long ago, so nothing is lost.
        result = await self.registrations.delete_many(
            {"status": Status.pending_confirmation.value, "expires_at": {"$lte": now}})
        return result.deleted_count

    async def mark_all_cancelling(self, slug: str, statuses: tuple[Status, ...], reason: str) -> None:
        """Mark an event's registrations in these statuses `cancelling`, each keeping the status it is cancelled
        from (one update per status, all in one round trip)."""
        statuses = tuple(Status(s) for s in domain.moves_to(Status.cancelling, statuses))
        ts = time.time()
        await self.registrations.bulk_write([
            UpdateMany({"event_slug": slug, "status": status.value},
                       {"$set": {"status": Status.cancelling.value, "cancel_reason": reason,
                                 "cancelled_from": status.value, "updated_ts": ts}})
            for status in statuses])

    async def registration(self, rid: str) -> dict | None:
        return await self.registrations.find_one({"_id": rid}, NO_OUTBOX)

    async def transition(self, rid: str, status: Status, changes: dict, entries: list[dict],
                         token_hash: str | None = None, only_from: tuple[Status, ...] | None = None
                         ) -> dict | None:
        """Move a registration to `status` along a move of domain.MOVES (only from `only_from`, if given),
        recording the messages this causes (and the hash of the token their link carries) in the same write; None
        when it was in no status that move starts from (another flow got there first)."""
        update = {"$set": {**changes, "status": status.value, "updated_ts": time.time()}, **outbox.add(entries)}
        if status == Status.cancelled:  # the address is free to register again
            update["$unset"] = {"live_email": ""}
        if token_hash:
            update["$push"] = {"token_hashes": token_hash}
        return await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(status, only_from)}}, update,
            projection=NO_OUTBOX, return_document=AFTER)

    async def registrations_of(self, slug: str, filters: dict, after: str | None = None,
                               limit: int | None = None) -> list[dict]:
        """An event's registrations in arrival order (ids sort by time), from after the cursor."""
        query = {"event_slug": slug, **filters}
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.registrations.find(query, NO_OUTBOX).sort("_id", 1)
        return await (cursor.limit(limit) if limit else cursor).to_list()

    async def counts(self, slug: str) -> dict[str, int]:
        cursor = await self.registrations.aggregate(
            [{"$match": {"event_slug": slug}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] async for row in cursor}

    async def set_answers(self, rid: str, answers: dict, statuses: tuple[Status, ...]) -> dict | None:
        """Change the answers of a registration in one of these statuses; None when it is in none."""
        return await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": [s.value for s in statuses]}},
            {"$set": {"answers": answers, "updated_ts": time.time()}}, projection=NO_OUTBOX, return_document=AFTER)

    async def erase(self, rid: str, entries: list[dict]) -> dict | None:
        """Remove a person's data from an `erasing` registration, with the message telling other services to."""
        return await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(Status.erased)}},
            {"$set": {"status": Status.erased.value, "email": domain.erased_email(rid), "updated_ts": time.time()},
             "$unset": {field: "" for field in (*domain.PERSONAL_FIELDS, "live_email")}, **outbox.add(entries)},
            projection=NO_OUTBOX, return_document=AFTER)

    async def events_keeping_personal_data(self) -> list[dict]:
        cursor = self.events.find({"personal_data": {"$in": ["kept", "purging"]}}, NO_OUTBOX)
        return [_read(doc) for doc in await cursor.to_list()]

    async def start_purge(self, slug: str, counts: dict[str, int]) -> None:
        """Keep the anonymous counts and mark the purge as begun (once: the first instance's counts stay)."""
        await self.events.update_one({"_id": slug, "personal_data": "kept"},
                                     {"$set": {"personal_data": "purging", "final_counts": counts}})

    async def end_purge(self, slug: str) -> None:
        await self.events.update_one({"_id": slug}, {"$set": {"personal_data": "purged"}})

    # Guest invites: one document per quota slot, `_id` = event/municipality/slot, so the unique _id is the quota.

    async def insert_invite(self, slug: str, municipality: str, slots: int, doc: dict,
                            entries: list[dict]) -> str | None:
        """Take the first free of the municipality's guest slots for the event; None when all are taken."""
        for slot in range(slots):
            invite_id = f"{slug}/{municipality}/{slot}"
            try:
                await self.invites.insert_one({"_id": invite_id, **doc, "used_by": "", **outbox.holding(entries)})
                return invite_id
            except DuplicateKeyError:
                continue
        return None

    async def invite(self, code_hash: str) -> dict | None:
        return await self.invites.find_one({"code_hash": code_hash}, NO_OUTBOX)

    async def use_invite(self, code_hash: str, rid: str) -> bool:
        """Single use: only one registration can claim the code. The claim stays marked (claim_ts) until the
        reconciler has seen the registration stored, so a claim whose request died can be given back."""
        result = await self.invites.update_one({"code_hash": code_hash, "used_by": ""},
                                               {"$set": {"used_by": rid, "claim_ts": time.time()}})
        return result.modified_count == 1

    async def give_back_invite(self, code_hash: str, rid: str) -> None:
        await self.invites.update_one({"code_hash": code_hash, "used_by": rid},
                                      {"$set": {"used_by": ""}, "$unset": {"claim_ts": ""}})

    async def unsettled_claims(self, before: datetime) -> list[dict]:
        return await self.invites.find({"claim_ts": {"$lte": before.timestamp()}},
                                       {"code_hash": 1, "used_by": 1}).to_list()

    async def settle_claim(self, code_hash: str, rid: str) -> None:
        await self.invites.update_one({"code_hash": code_hash, "used_by": rid}, {"$unset": {"claim_ts": ""}})

    async def stuck(self, statuses: tuple[Status, ...], before: datetime, slug: str | None = None
                    ) -> AsyncIterator[dict]:
        """Registrations left in a short-lived status by a flow that did not finish."""
        query = {"status": {"$in": [s.value for s in statuses]}, "updated_ts": {"$lte": before.timestamp()}}
        if slug:
            query["event_slug"] = slug
        cursor = self.registrations.find(query, NO_OUTBOX)
        async for doc in cursor:
            yield doc

    async def statuses(self, rids: list[str]) -> dict[str, str]:
        """The status of each of these registrations that exists."""
        docs = await self.registrations.find({"_id": {"$in": rids}}, {"status": 1}).to_list()
        return {doc["_id"]: doc["status"] for doc in docs}

    # Idempotency-Key records (the date sits in a sub-document so that the TTL index can use it on nx-27017 too)

    async def begin_request(self, record_id: str, fingerprint: str, expires_at: datetime, lease_s: float
                            ) -> dict | None:
        """Record a request as in flight; None when it may go ahead, else the earlier record. An in-flight
        record older than the lease was left by a crash and is taken over."""
        try:
            await self.requests.insert_one({"_id": record_id, "fingerprint": fingerprint, "state": "in_flight",
                                            "started_ts": time.time(), "expires": {"at": expires_at}})
            return None
        except DuplicateKeyError:
            pass
        taken = await self.requests.update_one(
            {"_id": record_id, "fingerprint": fingerprint, "state": "in_flight",
             "started_ts": {"$lte": time.time() - lease_s}}, {"$set": {"started_ts": time.time()}})
        if taken.modified_count:
            return None
        return await self.requests.find_one({"_id": record_id})

    async def complete_request(self, record_id: str, response: dict) -> None:
        await self.requests.update_one({"_id": record_id}, {"$set": {"state": "done", "response": response}})

    async def abandon_request(self, record_id: str) -> None:
        await self.requests.delete_one({"_id": record_id, "state": "in_flight"})
