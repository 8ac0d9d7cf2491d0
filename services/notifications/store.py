"""All MongoDB access of the notifications service: the notification records (which double as the claim that
makes a mail go out once), the attendees it keeps informed with their scheduled reminders, and unsubscriptions.

Written to work the same on MongoDB and on nx-27017 0.8.1, the local stand-in, which stores a datetime written by
an update ($set) as a string and ignores $setOnInsert in findAndModify: times that change or are compared are kept
as Unix seconds (`*_ts`), datetimes are only written by inserts, and a claim inserts before it updates."""

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import drop_retired_indexes, duplicates_in
from shared.outbox import FIELD as OUTBOX, add as outbox_add, holding as outbox_holding

from .domain import Mail, Status

# What a send came to: the record, its new status, the outbox entry announcing it (if any) and the error (if any).
Outcome = tuple[ObjectId, Status, dict | None, str | None]


def key(message_id: str, mail: Mail) -> dict:
    return {"message_id": message_id, "recipient": mail.recipient, "kind": mail.kind.value}


class Store:
    def __init__(self, db: AsyncDatabase):
        self.notifications = db["notifications"]
        self.attendees = db["attendees"]
        self.unsubscribes = db["unsubscribes"]

    async def ensure_indexes(self) -> None:
        await self.notifications.create_index(
            [("message_id", ASCENDING), ("recipient", ASCENDING), ("kind", ASCENDING)], unique=True)
        # What the audit trail is searched by (and erasure finds a person by). Not kind or status: a few values
        # each, they narrow little (a search by them alone reads newest first by _id and stops at a page), and
        # every index costs each mail's insert and status change.
        for field in ("recipient", "event_slug"):
            await self.notifications.create_index(field)
        await drop_retired_indexes(self.notifications, [[("kind", ASCENDING)], [("status", ASCENDING)]])
        await self.attendees.create_index("event_slug")
        await self.attendees.create_index("email")
        await self.attendees.create_index([("reminder", ASCENDING), ("due_ts", ASCENDING)])

    # --- notifications: claim → sent | failed | retrying ----------------------------------------------------

    async def claim(self, claims: list[tuple[str, Mail]], now: float, lease_s: float) -> list[dict | None]:
        """Take the right to send each of these mails, in one write for the new ones: a new record, one left
        retrying, or one whose sender's lease ran out (a crashed replica). None for a mail that was sent, failed
        for good, or that another replica (or another item of the batch) holds now."""
        records = [{"_id": ObjectId(), **key(message_id, mail), "status": Status.sending.value, "attempts": 1,
                    "lease_until_ts": now + lease_s, "updated_ts": now, "event_slug": mail.event_slug,
                    "registration_id": mail.registration_id, "language": mail.language.value,
                    "created_at": datetime.fromtimestamp(now, UTC), **outbox_holding([])}
                   for message_id, mail in claims]
        # Unordered: one duplicate key (a mail seen before) does not stop the inserts after it.
        seen = await duplicates_in(self.notifications.insert_many(records, ordered=False))
        return [await self._take_over(*claims[i], now, lease_s) if i in seen else record
                for i, record in enumerate(records)]

    async def _take_over(self, message_id: str, mail: Mail, now: float, lease_s: float) -> dict | None:
        """A mail seen before: take it over only if it is free."""
        return await self.notifications.find_one_and_update(
            {**key(message_id, mail), "$or": [
                {"status": Status.retrying.value},
                {"status": Status.sending.value, "lease_until_ts": {"$lt": now}}]},
            {"$set": {"status": Status.sending.value, "lease_until_ts": now + lease_s, "updated_ts": now},
             "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER)

    async def find_by_key(self, message_id: str, mail: Mail) -> dict | None:
        return await self.notifications.find_one(key(message_id, mail))

    async def finish(self, outcomes: list[Outcome], now: float) -> None:
        """Record the outcomes of many sends in one write, each with the event that tells other systems about it
        in the same document (its outbox)."""
        writes = []
        for doc_id, status, outbox_entry, error in outcomes:
            update: dict[str, Any] = {"$set": {"status": status.value, "updated_ts": now, "lease_until_ts": None,
                                               "last_error": error},
                                      **(outbox_add([outbox_entry]) if outbox_entry else {})}
            if status == Status.sent:
                update["$set"]["sent_ts"] = now
            writes.append(UpdateOne({"_id": doc_id, "status": Status.sending.value}, update))
        await self.notifications.bulk_write(writes, ordered=False)

    async def release(self, doc_id: ObjectId, now: float, error: str) -> None:
        """A transient failure: let the next delivery of the message take it again at once."""
        await self.notifications.update_one(
            {"_id": doc_id, "status": Status.sending.value},
            {"$set": {"status": Status.retrying.value, "lease_until_ts": None, "updated_ts": now,
                      "last_error": error}})

    async def get(self, notification_id: str) -> dict | None:
        try:
            return await self.notifications.find_one({"_id": ObjectId(notification_id)}, {OUTBOX: 0})
        except InvalidId:
            return None

    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[dict]:
        """Newest first; `after` is the id of the last record of the previous page."""
        query: dict[str, Any] = dict(filters)
        if after:
            query["_id"] = {"$lt": ObjectId(after)}
        cursor = self.notifications.find(query, {OUTBOX: 0}).sort("_id", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def anonymise(self, email: str) -> int:
        """Erasure: keep the counts, drop the person. Each record gets its own placeholder so that the unique
        (message, recipient, kind) index still holds."""
        erased = 0
        async for doc in self.notifications.find({"recipient": email}, {"_id": 1}):
            await self.notifications.update_one(
                {"_id": doc["_id"]},
                {"$set": {"recipient": f"erased:{doc['_id']}", "erased": True, OUTBOX: []}})
            erased += 1
        await self.attendees.delete_many({"email": email})
        await self.unsubscribes.delete_many({"email": email})
        return erased

    # --- attendees: who hears about changes to a møteplass, and their reminder -----------------------------
    # One document per registration holds both, so a registration message costs one write. The reminder is
    # scheduled in the store, so it survives restarts, and taken with a lease, so it fires once among replicas.

    async def remember_attendees(self, states: list[tuple[str, dict, float]]) -> list[bool]:
        """Keep the newest state of each registration (id, fields, as of), in one write; False for a state older
        than the one already recorded (a message that arrived late). The `as_of` guard makes the outcome the
        same in any order, also for two states of one registration in a batch."""
        writes = [UpdateOne({"_id": registration_id, "as_of_ts": {"$lte": as_of}},
                            {"$set": {**fields, "as_of_ts": as_of}}, upsert=True)
                  for registration_id, fields, as_of in states]
        # The upsert of an existing id whose newer state the filter did not match: a duplicate key.
        late = await duplicates_in(self.attendees.bulk_write(writes, ordered=False))
        return [i not in late for i in range(len(states))]

    async def attendees_of(self, event_slug: str) -> list[dict]:
        return await self.attendees.find({"event_slug": event_slug}).to_list()

    async def cancel_reminders(self, event_slug: str) -> None:
        await self.attendees.update_many({"event_slug": event_slug, "reminder": {"$in": ["scheduled", "sending"]}},
                                         {"$set": {"reminder": "cancelled"}})

    async def move_reminders(self, event: dict, due: float) -> None:
        """The time or place changed: remind again of the new version (a new sequence makes a new mail)."""
        await self.attendees.update_many(
            {"event_slug": event["slug"], "event.sequence": {"$lt": event["sequence"]},
             "reminder": {"$in": ["scheduled", "sent"]}},
            {"$set": {"event": event, "due_ts": due, "reminder": "scheduled", "lease_until_ts": None}})

    async def take_due_reminder(self, now: float, lease_s: float) -> dict | None:
        return await self.attendees.find_one_and_update(
            {"$or": [{"reminder": "scheduled", "due_ts": {"$lte": now}},
                     {"reminder": "sending", "lease_until_ts": {"$lt": now}}]},
            {"$set": {"reminder": "sending", "lease_until_ts": now + lease_s}},
            sort=[("due_ts", ASCENDING)], return_document=ReturnDocument.AFTER)

    async def reminder_done(self, registration_id: str) -> None:
        await self.attendees.update_one({"_id": registration_id, "reminder": "sending"},
                                        {"$set": {"reminder": "sent", "lease_until_ts": None}})

    # --- unsubscriptions ------------------------------------------------------------------------------------

    async def unsubscribe(self, email: str, topic: str, now: datetime) -> None:
        try:
            await self.unsubscribes.insert_one({"_id": f"{topic}:{email}", "email": email, "topic": topic, "at": now})
        except DuplicateKeyError:
            pass  # unsubscribed already

    async def is_unsubscribed(self, email: str, topic: str) -> bool:
        return await self.unsubscribes.find_one({"_id": f"{topic}:{email}"}) is not None
