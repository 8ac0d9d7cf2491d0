"""All MongoDB access of the registration service. Every change is one single-document atomic write: the event
document holds who has a seat (`seats`) and who waits (`waitlist`, in arrival order); a registration document
holds the person, its status and the outbox of messages its changes caused. Every write that changes `seats` or
`waitlist` (or `free`) increments `places_version`, as every admin change increments `version`: an event unchanged
since it was read is then known by these two and `free` (its Revision), which lets the hot path write without
reading back.

The rest of the service sees the documents as the domain's types (domain.Event, Registration, GuestInvite,
RequestRecord: domain ids, datetimes, enumerations); `*_to_doc` and `*_from_doc` below turn one into the other, and
how a document is stored stays here. It is stored to work the same on MongoDB and on nx-27017 0.8.1, which differs
in a few places, so this module uses only what both do alike: free seats are a counter (`free`) instead of an $expr
on the array sizes (nx-27017 ignores the rest of a filter holding $expr), array membership is tested with
{array: x} and $nin (not $ne, nor positions like "waitlist.0"), a time set by an update is kept as Unix seconds
(`updated_ts`, `claim_ts`, `started_ts`: nx-27017 stores a datetime written by $set as a string), an event's times
live in a sub-document replaced whole (`schedule`), and outbox entries are appended with $addToSet (see
shared.outbox.add)."""

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import fields, replace
from datetime import datetime
from typing import NamedTuple

from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import outbox
from shared.messages import Language
from shared.mongo import drop_retired_indexes, duplicates_in

from . import domain
from .domain import Event, EventStatus, GuestInvite, OrganisationType, Registration, RequestRecord, Status

AFTER = ReturnDocument.AFTER
SCHEDULE = ("starts_at", "ends_at", "registration_opens_at", "registration_closes_at")
NO_OUTBOX = {outbox.FIELD: 0}


# ---- documents: the domain's types as stored, and back ------------------------------------------------------------
# A field that is None is left out of a new document (absent reads as None). What only this module knows is dropped
# on the way out: `free`, `version` and `places_version` (kept in the event's revision), `live_email`, `updated_ts`,
# `claim_ts` and the outbox.

class Revision(NamedTuple):
    """An event as read, for a compare-and-set: unchanged since if all three still hold. (`places_version` is
    None on an event stored before it existed: the filter then matches its absence.)"""

    free: int
    version: int
    places_version: int | None


EVENT_FIELDS = tuple(f.name for f in fields(Event) if f.name not in ("slug", "revision"))
REGISTRATION_FIELDS = tuple(f.name for f in fields(Registration) if f.name != "id")
INVITE_FIELDS = tuple(f.name for f in fields(GuestInvite) if f.name != "used_by")


def _present(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def event_to_doc(event: Event) -> dict:
    """The times in a sub-document, always written whole (see the module's docstring)."""
    return {"_id": event.slug, **_present({k: getattr(event, k) for k in EVENT_FIELDS if k not in SCHEDULE}),
            "schedule": {k: getattr(event, k) for k in SCHEDULE}}


def event_from_doc(doc: dict | None) -> Event | None:
    if doc is None:
        return None
    stored = {**doc, **doc.get("schedule", {})}
    values = {k: stored[k] for k in EVENT_FIELDS if k in stored}
    values.update(status=EventStatus(doc["status"]), language=Language(doc["language"]))
    return Event(slug=doc["_id"], **values,
                 revision=Revision(doc["free"], doc["version"], doc.get("places_version")))


def registration_to_doc(registration: Registration) -> dict:
    return {"_id": registration.id, **_present({k: getattr(registration, k) for k in REGISTRATION_FIELDS})}


def registration_from_doc(doc: dict | None) -> Registration | None:
    if doc is None:
        return None
    values = {k: doc[k] for k in REGISTRATION_FIELDS if k in doc}
    values.update(status=Status(doc["status"]), language=Language(doc["language"]))
    if "organisation_type" in values:
        values["organisation_type"] = OrganisationType(values["organisation_type"])
    if values.get("cancelled_from") is not None:
        values["cancelled_from"] = Status(values["cancelled_from"])
    return Registration(id=doc["_id"], **values)


def invite_to_doc(invite: GuestInvite, invite_id: str) -> dict:
    # A code no one has claimed is stored with used_by "", which a claim matches.
    return {"_id": invite_id, **{k: getattr(invite, k) for k in INVITE_FIELDS}, "used_by": invite.used_by or ""}


def invite_from_doc(doc: dict | None) -> GuestInvite | None:
    if doc is None:
        return None
    return GuestInvite(**{k: doc[k] for k in INVITE_FIELDS if k in doc}, used_by=doc["used_by"] or None)


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

    async def insert_event(self, event: Event, entries: list[dict]) -> None:
        try:
            await self.events.insert_one({**event_to_doc(event), "free": event.capacity - len(event.seats),
                                          "version": 0, "places_version": 0, **outbox.holding(entries)})
        except DuplicateKeyError as exc:
            raise Duplicate from exc

    async def event(self, slug: str) -> Event | None:
        return event_from_doc(await self.events.find_one({"_id": slug}, NO_OUTBOX))

    async def listed_events(self) -> list[Event]:
        """The public list, soonest first: drafts stay out."""
        cursor = self.events.find({"status": {"$in": [EventStatus.published.value, EventStatus.cancelled.value]}},
                                  NO_OUTBOX)
        return [event_from_doc(doc) for doc in await cursor.sort("schedule.starts_at", 1).to_list()]

    async def upcoming_events(self, now: datetime) -> list[Event]:
        cursor = self.events.find({"schedule.ends_at": {"$gt": now}}, NO_OUTBOX)
        return [event_from_doc(doc) for doc in await cursor.to_list()]

    async def update_event(self, event: Event, changed: dict, entries: list[dict]) -> Event | None:
        """Write an admin's change (fields of Event) unless another admin change was written since the event was
        read, or the capacity would fall below the seats held now; None then."""
        fields = {k: v for k, v in changed.items() if k not in SCHEDULE}
        fields["schedule"] = event_to_doc(replace(event, **changed))["schedule"]
        query = {"_id": event.slug, "version": event.revision.version}
        increments = {"version": 1}
        if "capacity" in changed:
            more = changed["capacity"] - event.capacity
            increments["free"] = more
            if more < 0:
                query["free"] = {"$gte": -more}
        return event_from_doc(await self.events.find_one_and_update(
            query, {"$set": fields, "$inc": increments, **outbox.add(entries)}, projection=NO_OUTBOX,
            return_document=AFTER))

    async def take_places(self, batches: dict[str, tuple[Event, list[str], list[str]]]) -> dict[str, Event]:
        """Give batches of new registrations their places, per event slug (the event as last read, seated,
        waiting): in one write on each event, if it is open and unchanged since that read (compare-and-set), seats
        to `seated` and the waiting list to `waiting`, each in its order. One round trip for all the events.
        Returns each event as it is after: when every write landed, as the read plus these writes (exact, since
        nothing else changed it); otherwise read back, for domain.batch_landed to tell whose batch landed."""
        writes, after = [], {}
        for slug, (event, seated, waiting) in batches.items():
            read = event.revision
            changes = 1 if seated or waiting else 0  # nothing to place (full): only the check
            writes.append(UpdateOne(
                {"_id": slug, "status": EventStatus.published.value, "free": read.free, "version": read.version,
                 "places_version": read.places_version},
                {"$push": {"seats": {"$each": seated}, "waitlist": {"$each": waiting}},
                 "$inc": {"free": -len(seated), "places_version": changes}}))
            after[slug] = replace(event, seats=event.seats + seated, waitlist=event.waitlist + waiting,
                                  revision=Revision(read.free - len(seated), read.version,
                                                    (read.places_version or 0) + changes))
        result = await self.events.bulk_write(writes, ordered=False)
        if result.matched_count == len(writes):
            return after
        return {doc["_id"]: event_from_doc(doc)
                for doc in await self.events.find({"_id": {"$in": list(batches)}}, NO_OUTBOX).to_list()}

    async def release(self, slug: str, rid: str) -> Event | None:
        """Give back rid's seat or waiting-list place (idempotent); returns the event after."""
        for held, update in (("seats", {"$pull": {"seats": rid}, "$inc": {"free": 1, "places_version": 1}}),
                             ("waitlist", {"$pull": {"waitlist": rid}, "$inc": {"places_version": 1}})):
            if event := await self.events.find_one_and_update({"_id": slug, held: rid}, update,
                                                              projection=NO_OUTBOX, return_document=AFTER):
                return event_from_doc(event)
        return await self.event(slug)

    async def promote(self, slug: str, rid: str) -> Event | None:
        """Move rid from the waiting list to a seat, if it is still waiting and a seat is still free. The caller
        passes the first in line: no one is ever put before it, so while it waits it is still first."""
        return event_from_doc(await self.events.find_one_and_update(
            {"_id": slug, "free": {"$gt": 0}, "waitlist": rid},
            {"$pull": {"waitlist": rid}, "$push": {"seats": rid}, "$inc": {"free": -1, "places_version": 1}},
            projection=NO_OUTBOX, return_document=AFTER))

    # Registrations

    async def insert_registrations(self, batch: list[tuple[Registration, list[dict]]]) -> list[bool]:
        """Store registrations, each with its outbox entries, in one round trip; says of each whether it was
        stored (False: that email is already registered for the event, the others are stored all the same)."""
        ts = time.time()
        duplicates = await duplicates_in(self.registrations.insert_many(
            [{**registration_to_doc(registration), "live_email": registration.email, "updated_ts": ts,
              **outbox.holding(entries)} for registration, entries in batch], ordered=False))
        return [i not in duplicates for i in range(len(batch))]

    async def delete_registration(self, rid: str, status: Status) -> None:
        await self.registrations.delete_one({"_id": rid, "status": status.value})

    async def confirm_email(self, rid: str, now: datetime) -> Registration | None:
        """pending_confirmation → allocating, if the link has not expired."""
        return registration_from_doc(await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(Status.allocating)}, "expires_at": {"$gt": now}},
            {"$set": {"status": Status.allocating.value, "updated_ts": time.time()}, "$unset": {"expires_at": ""}},
            projection=NO_OUTBOX, return_document=AFTER))

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

    async def registration(self, rid: str) -> Registration | None:
        return registration_from_doc(await self.registrations.find_one({"_id": rid}, NO_OUTBOX))

    async def transition(self, rid: str, status: Status, changes: dict, entries: list[dict],
                         token_hash: str | None = None, only_from: tuple[Status, ...] | None = None
                         ) -> Registration | None:
        """Move a registration to `status` along a move of domain.MOVES (only from `only_from`, if given), with
        `changes` to other fields of Registration (no datetimes: see the module's docstring), recording the
        messages this causes (and the hash of the token their link carries) in the same write; None when it was
        in no status that move starts from (another flow got there first)."""
        update = {"$set": {**changes, "status": status.value, "updated_ts": time.time()}, **outbox.add(entries)}
        if status == Status.cancelled:  # the address is free to register again
            update["$unset"] = {"live_email": ""}
        if token_hash:
            update["$push"] = {"token_hashes": token_hash}
        return registration_from_doc(await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(status, only_from)}}, update,
            projection=NO_OUTBOX, return_document=AFTER))

    async def registrations_of(self, slug: str, statuses: Iterable[Status] | None = None,
                               organisation_type: str | None = None, municipality: str | None = None,
                               after: str | None = None, limit: int | None = None) -> list[Registration]:
        """An event's registrations in arrival order (ids sort by time), from after the cursor (an id); only those
        in these statuses, of this organisation type, from this municipality (its number), when given."""
        query: dict = {"event_slug": slug}
        if statuses is not None:
            query["status"] = {"$in": [Status(s).value for s in statuses]}
        if organisation_type is not None:
            query["organisation_type"] = organisation_type
        if municipality is not None:
            query["municipality.number"] = municipality
        if after:
            query["_id"] = {"$gt": after}
        cursor = self.registrations.find(query, NO_OUTBOX).sort("_id", 1)
        return [registration_from_doc(doc) for doc in await (cursor.limit(limit) if limit else cursor).to_list()]

    async def counts(self, slug: str) -> dict[str, int]:
        cursor = await self.registrations.aggregate(
            [{"$match": {"event_slug": slug}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] async for row in cursor}

    async def set_answers(self, rid: str, answers: dict, statuses: tuple[Status, ...]) -> Registration | None:
        """Change the answers of a registration in one of these statuses; None when it is in none."""
        return registration_from_doc(await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": [s.value for s in statuses]}},
            {"$set": {"answers": answers, "updated_ts": time.time()}}, projection=NO_OUTBOX, return_document=AFTER))

    async def erase(self, rid: str, entries: list[dict]) -> Registration | None:
        """Remove a person's data from an `erasing` registration, with the message telling other services to."""
        return registration_from_doc(await self.registrations.find_one_and_update(
            {"_id": rid, "status": {"$in": domain.moves_to(Status.erased)}},
            {"$set": {"status": Status.erased.value, "email": domain.erased_email(rid), "updated_ts": time.time()},
             "$unset": {field: "" for field in (*domain.PERSONAL_FIELDS, "live_email")}, **outbox.add(entries)},
            projection=NO_OUTBOX, return_document=AFTER))

    async def events_keeping_personal_data(self) -> list[Event]:
        cursor = self.events.find({"personal_data": {"$in": ["kept", "purging"]}}, NO_OUTBOX)
        return [event_from_doc(doc) for doc in await cursor.to_list()]

    async def start_purge(self, slug: str, counts: dict[str, int]) -> None:
        """Keep the anonymous counts and mark the purge as begun (once: the first instance's counts stay)."""
        await self.events.update_one({"_id": slug, "personal_data": "kept"},
                                     {"$set": {"personal_data": "purging", "final_counts": counts}})

    async def end_purge(self, slug: str) -> None:
        await self.events.update_one({"_id": slug}, {"$set": {"personal_data": "purged"}})

    # Guest invites: one document per quota slot, `_id` = event/municipality/slot, so the unique _id is the quota.

    async def insert_invite(self, invite: GuestInvite, slots: int, entries: list[dict]) -> str | None:
        """Store the invite in the first free of its municipality's guest slots for its event; its id (for the
        outbox), or None when all are taken."""
        for slot in range(slots):
            invite_id = f"{invite.event_slug}/{invite.municipality}/{slot}"
            try:
                await self.invites.insert_one({**invite_to_doc(invite, invite_id), **outbox.holding(entries)})
                return invite_id
            except DuplicateKeyError:
                continue
        return None

    async def invite(self, code_hash: str) -> GuestInvite | None:
        return invite_from_doc(await self.invites.find_one({"code_hash": code_hash}, NO_OUTBOX))

    async def use_invite(self, code_hash: str, rid: str) -> bool:
        """Single use: only one registration can claim the code. The claim stays marked (claim_ts) until the
        reconciler has seen the registration stored, so a claim whose request died can be given back."""
        result = await self.invites.update_one({"code_hash": code_hash, "used_by": ""},
                                               {"$set": {"used_by": rid, "claim_ts": time.time()}})
        return result.modified_count == 1

    async def give_back_invite(self, code_hash: str, rid: str) -> None:
        await self.invites.update_one({"code_hash": code_hash, "used_by": rid},
                                      {"$set": {"used_by": ""}, "$unset": {"claim_ts": ""}})

    async def unsettled_claims(self, before: datetime) -> list[GuestInvite]:
        """Invites claimed at or before `before` whose claim the reconciler has not settled yet."""
        return [invite_from_doc(doc) for doc in
                await self.invites.find({"claim_ts": {"$lte": before.timestamp()}}, NO_OUTBOX).to_list()]

    async def settle_claim(self, code_hash: str, rid: str) -> None:
        await self.invites.update_one({"code_hash": code_hash, "used_by": rid}, {"$unset": {"claim_ts": ""}})

    async def stuck(self, statuses: tuple[Status, ...], before: datetime, slug: str | None = None
                    ) -> AsyncIterator[Registration]:
        """Registrations left in a short-lived status by a flow that did not finish."""
        query = {"status": {"$in": [s.value for s in statuses]}, "updated_ts": {"$lte": before.timestamp()}}
        if slug:
            query["event_slug"] = slug
        async for doc in self.registrations.find(query, NO_OUTBOX):
            yield registration_from_doc(doc)

    async def statuses(self, rids: list[str]) -> dict[str, Status]:
        """The status of each of these registrations that exists."""
        docs = await self.registrations.find({"_id": {"$in": rids}}, {"status": 1}).to_list()
        return {doc["_id"]: Status(doc["status"]) for doc in docs}

    # Idempotency-Key records (the date sits in a sub-document so that the TTL index can use it on nx-27017 too)

    async def begin_request(self, record_id: str, fingerprint: str, expires_at: datetime, lease_s: float
                            ) -> RequestRecord | None:
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
        prior = await self.requests.find_one({"_id": record_id})
        if prior is None:  # abandoned meanwhile
            return None
        return RequestRecord(prior["fingerprint"], prior["response"] if prior["state"] == "done" else None)

    async def complete_request(self, record_id: str, response: dict) -> None:
        await self.requests.update_one({"_id": record_id}, {"$set": {"state": "done", "response": response}})

    async def abandon_request(self, record_id: str) -> None:
        await self.requests.delete_one({"_id": record_id, "state": "in_flight"})
