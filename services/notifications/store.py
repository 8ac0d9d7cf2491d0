"""All MongoDB access of the notifications service: the notification records (which double as the claim that
makes a mail go out once), the attendees it keeps informed with their scheduled reminders, and unsubscriptions.

Written to work the same on MongoDB and on nx-27017 0.8.1, the local stand-in, which stores a datetime written by
an update ($set) as a string, ignores $setOnInsert in findAndModify, and ignores every filter condition beside an
`$or` in findAndModify: times that change or are compared are kept as Unix seconds (`*_ts`), datetimes are only
written by inserts, a claim inserts before it updates, and a claim is taken over by a read and a compare-and-set
on the record's `_id`, status and attempts (each claim counts one attempt, so they name the claim holding it)."""

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import drop_retired_indexes, duplicates_in
# Whether an error says the store did not answer, which callers wait out (the rule the HTTP 503s use): named
# here, the one module that knows the driver.
from shared.mongo import unavailable as unavailable
from shared.outbox import FIELD as OUTBOX, add as outbox_add, holding as outbox_holding

from . import domain
from .domain import Mail, Status




def key(message_id: str, mail: Mail) -> dict:
    return {"message_id": message_id, "recipient": mail.recipient, "kind": mail.kind.value}


def claim_of(record: dict) -> dict:
    """The filter that matches a record only in the state read: a claim changes its status or its attempts."""
    return {"_id": record["_id"], "status": record["status"], "attempts": record["attempts"]}


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
        """A mail seen before: take it over only if it is free, by a compare-and-set on the very claim read (its
        `_id`, status and attempts), so that a competing replica's take-over makes this one match nothing."""
        current = await self.find_by_key(message_id, mail)
        if current is None or not domain.is_free(current, now):
            return None
        changes = {"status": Status.sending.value, "lease_until_ts": now + lease_s, "updated_ts": now,
                   "attempts": current["attempts"] + 1}
        if current["status"] == Status.sending:
            # Its sender died holding it, maybe after the server had taken the mail: sent again, it may be a copy.
            changes["possible_copy"] = True
        taken = await self.notifications.update_one(claim_of(current), {"$set": changes})
        return {**current, **changes} if taken.modified_count == 1 else None

    async def find_by_key(self, message_id: str, mail: Mail) -> dict | None:
        return await self.notifications.find_one(key(message_id, mail), {OUTBOX: 0})

    async def finish(self, record: dict, status: Status, outbox_entry: dict | None, error: str | None,
                     now: float) -> bool:
        """Record what a send came to, at once and on its own (the one window for a copy is between the server's
        answer and this write), with the event that tells other systems about it in the same document (its
        outbox). False if the claim was no longer this sender's (taken over after its lease ran out); true again
        when a retry finds the write done (its answer was lost on the way)."""
        changes: dict[str, Any] = {"status": status.value, "updated_ts": now, "lease_until_ts": None,
                                   "last_error": error}
        if status == Status.sent:
            changes["sent_ts"] = now
        written = await self.notifications.update_one(
            claim_of(record), {"$set": changes, **(outbox_add([outbox_entry]) if outbox_entry else {})})
        if written.modified_count == 1:
            return True
        now_is = await self.notifications.find_one({"_id": record["_id"]}, {"status": 1, "attempts": 1})
        return now_is is not None and (now_is["status"], now_is["attempts"]) == (status.value, record["attempts"])

    async def release(self, record: dict, now: float, error: str) -> None:
        """A transient failure: let the next delivery of the message take it again at once."""
        await self.notifications.update_one(
            claim_of(record),
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
