"""All MongoDB access of the notifications service: the notification records (which double as the claim that
makes a mail go out once), the attendees it keeps informed with their scheduled reminders, and unsubscriptions.

The service sees them as the domain's types (NotificationRecord, Attendee, Unsubscription), with datetimes and id
strings; how they are stored is this module's business (`*_to_doc`, `*_from_doc`). Written to work the same on
MongoDB and on nx-27017 0.8.1, the local stand-in, which stores a datetime written by an update ($set) as a string,
ignores $setOnInsert in findAndModify, and ignores every filter condition beside an `$or` in findAndModify: times
that change or are compared are kept as Unix seconds (`*_ts`), datetimes are only written by inserts, a claim
inserts before it updates, and a claim is taken over by a read and a compare-and-set on the record's `_id`, status
and attempts (each claim counts one attempt, so they name the claim holding it)."""

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.messages import Language
from shared.messages.notifications import NotificationKind
from shared.messages.registration import EventInfo, RegistrationStatus
from shared.mongo import drop_retired_indexes, duplicates_in
# Whether an error says the store did not answer, which callers wait out (the rule the HTTP 503s use): named
# here, the one module that knows the driver.
from shared.mongo import unavailable as unavailable
from shared.outbox import FIELD as OUTBOX, add as outbox_add, holding as outbox_holding

from . import domain
from .domain import Attendee, Mail, NotificationRecord, Reminder, Status, Unsubscribe, Unsubscription


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _at(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


# --- notifications ------------------------------------------------------------------------------------------

def record_to_doc(record: NotificationRecord) -> dict:
    """A new record as inserted by its first claim, with its (empty) outbox: nx-27017's $addToSet does not create a
    missing array. What a send comes to is written by updates (`Store.finish`, `Store.release`)."""
    return {"_id": ObjectId(record.id), "message_id": record.message_id, "recipient": record.recipient,
            "kind": record.kind.value, "status": record.status.value, "attempts": record.attempts,
            "lease_until_ts": _ts(record.lease_until), "updated_ts": record.updated_at.timestamp(),
            "event_slug": record.event_slug, "registration_id": record.registration_id,
            "language": record.language.value, "created_at": record.created_at, **outbox_holding([])}


def record_from_doc(doc: dict) -> NotificationRecord:
    return NotificationRecord(
        id=str(doc["_id"]), message_id=doc["message_id"], recipient=doc["recipient"],
        kind=NotificationKind(doc["kind"]), status=Status(doc["status"]), attempts=doc["attempts"],
        language=Language(doc["language"]), created_at=doc["created_at"], updated_at=_at(doc["updated_ts"]),
        event_slug=doc.get("event_slug"), registration_id=doc.get("registration_id"),
        lease_until=_at(doc.get("lease_until_ts")), sent_at=_at(doc.get("sent_ts")),
        # A flag written by $set reads back as 1 on nx-27017.
        last_error=doc.get("last_error"), possible_copy=bool(doc.get("possible_copy")))


def key(message_id: str, mail: Mail) -> dict:
    return {"message_id": message_id, "recipient": mail.recipient, "kind": mail.kind.value}


def claim_of(record: NotificationRecord) -> dict:
    """The filter that matches a record only in the state read: a claim changes its status or its attempts."""
    return {"_id": ObjectId(record.id), "status": record.status.value, "attempts": record.attempts}


# --- attendees ----------------------------------------------------------------------------------------------

def attendee_to_doc(attendee: Attendee) -> dict:
    """The fields a registration's state sets (its `_id` is the registration's id); a state without a reminder
    leaves the stored one as it is."""
    doc = {"event_slug": attendee.event.slug, "email": attendee.email, "name": attendee.name,
           "language": attendee.language.value, "status": attendee.status.value, "manage_url": attendee.manage_url,
           "event": attendee.event.model_dump(), "as_of_ts": attendee.as_of.timestamp()}
    if attendee.reminder is not None:
        doc |= {"reminder": attendee.reminder.value, "due_ts": _ts(attendee.due),
                "lease_until_ts": _ts(attendee.lease_until)}
    return doc


def attendee_from_doc(doc: dict) -> Attendee:
    return Attendee(
        registration_id=doc["_id"], event=EventInfo.model_validate(doc["event"]), email=doc["email"],
        name=doc["name"], language=Language(doc["language"]), status=RegistrationStatus(doc["status"]),
        manage_url=doc.get("manage_url"), as_of=_at(doc["as_of_ts"]),
        reminder=Reminder(doc["reminder"]) if doc.get("reminder") else None, due=_at(doc.get("due_ts")),
        lease_until=_at(doc.get("lease_until_ts")))


# --- unsubscribes -------------------------------------------------------------------------------------------

def unsubscribe_id(email: str, topic: Unsubscribe) -> str:
    return f"{topic.value}:{email}"


def unsubscription_to_doc(unsubscription: Unsubscription) -> dict:
    return {"_id": unsubscribe_id(unsubscription.email, unsubscription.topic), "email": unsubscription.email,
            "topic": unsubscription.topic.value, "at": unsubscription.at}


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

    async def claim(self, claims: list[tuple[str, Mail]], now: datetime, lease: timedelta
                    ) -> list[NotificationRecord | None]:
        """Take the right to send each of these mails, in one write for the new ones: a new record, one left
        retrying, or one whose sender's lease ran out (a crashed replica). None for a mail that was sent, failed
        for good, or that another replica (or another item of the batch) holds now."""
        records = [domain.first_claim(str(ObjectId()), message_id, mail, now, lease) for message_id, mail in claims]
        # Unordered: one duplicate key (a mail seen before) does not stop the inserts after it.
        seen = await duplicates_in(self.notifications.insert_many([record_to_doc(r) for r in records], ordered=False))
        return [await self._take_over(*claims[i], now, lease) if i in seen else record
                for i, record in enumerate(records)]

    async def _take_over(self, message_id: str, mail: Mail, now: datetime, lease: timedelta
                         ) -> NotificationRecord | None:
        """A mail seen before: take it over only if it is free, by a compare-and-set on the very claim read (its
        `_id`, status and attempts), so that a competing replica's take-over makes this one match nothing."""
        current = await self.find_by_key(message_id, mail)
        if current is None or not domain.is_free(current, now):
            return None
        taken = domain.take_over(current, now, lease)
        changes = {"status": taken.status.value, "lease_until_ts": _ts(taken.lease_until),
                   "updated_ts": now.timestamp(), "attempts": taken.attempts}
        if taken.possible_copy:
            changes["possible_copy"] = True
        written = await self.notifications.update_one(claim_of(current), {"$set": changes})
        return taken if written.modified_count == 1 else None

    async def find_by_key(self, message_id: str, mail: Mail) -> NotificationRecord | None:
        doc = await self.notifications.find_one(key(message_id, mail), {OUTBOX: 0})
        return None if doc is None else record_from_doc(doc)

    async def finish(self, record: NotificationRecord, status: Status, outbox_entry: dict | None, error: str | None,
                     now: datetime) -> bool:
        """Record what a send came to, at once and on its own (the one window for a copy is between the server's
        answer and this write), with the event that tells other systems about it in the same document (its
        outbox). False if the claim was no longer this sender's (taken over after its lease ran out); true again
        when a retry finds the write done (its answer was lost on the way)."""
        changes: dict[str, Any] = {"status": status.value, "updated_ts": now.timestamp(), "lease_until_ts": None,
                                   "last_error": error}
        if status == Status.sent:
            changes["sent_ts"] = now.timestamp()
        written = await self.notifications.update_one(
            claim_of(record), {"$set": changes, **(outbox_add([outbox_entry]) if outbox_entry else {})})
        if written.modified_count == 1:
            return True
        now_is = await self.notifications.find_one({"_id": ObjectId(record.id)}, {"status": 1, "attempts": 1})
        return now_is is not None and (now_is["status"], now_is["attempts"]) == (status.value, record.attempts)

    async def release(self, record: NotificationRecord, now: datetime, error: str) -> None:
        """A transient failure: let the next delivery of the message take it again at once."""
        await self.notifications.update_one(
            claim_of(record),
            {"$set": {"status": Status.retrying.value, "lease_until_ts": None, "updated_ts": now.timestamp(),
                      "last_error": error}})

    def outbox_batch(self, outcomes: list[tuple[str, dict]]) -> list[tuple[ObjectId, list[dict]]]:
        """The outcome events of records (by id) as the outbox relay flushes them from this collection."""
        return [(ObjectId(record_id), [entry]) for record_id, entry in outcomes]

    async def get(self, notification_id: str) -> NotificationRecord | None:
        try:
            doc = await self.notifications.find_one({"_id": ObjectId(notification_id)}, {OUTBOX: 0})
        except InvalidId:
            return None
        return None if doc is None else record_from_doc(doc)

    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[NotificationRecord]:
        """Newest first, filtered by fields of the record (recipient, event_slug, kind, status) equal to a value;
        `after` is the id of the last record of the previous page."""
        query: dict[str, Any] = dict(filters)
        if after:
            query["_id"] = {"$lt": ObjectId(after)}
        cursor = self.notifications.find(query, {OUTBOX: 0}).sort("_id", DESCENDING).limit(limit)
        return [record_from_doc(doc) async for doc in cursor]

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

    async def remember_attendees(self, states: list[Attendee]) -> list[bool]:
        """Keep the newest state of each registration, in one write; False for a state older than the one already
        recorded (a message that arrived late). The `as_of` guard makes the outcome the same in any order, also
        for two states of one registration in a batch."""
        writes = [UpdateOne({"_id": state.registration_id, "as_of_ts": {"$lte": state.as_of.timestamp()}},
                            {"$set": attendee_to_doc(state)}, upsert=True)
                  for state in states]
        # The upsert of an existing id whose newer state the filter did not match: a duplicate key.
        late = await duplicates_in(self.attendees.bulk_write(writes, ordered=False))
        return [i not in late for i in range(len(states))]

    async def attendees_of(self, event_slug: str) -> list[Attendee]:
        return [attendee_from_doc(doc) async for doc in self.attendees.find({"event_slug": event_slug})]

    async def cancel_reminders(self, event_slug: str) -> None:
        await self.attendees.update_many(
            {"event_slug": event_slug, "reminder": {"$in": [Reminder.scheduled.value, Reminder.sending.value]}},
            {"$set": {"reminder": Reminder.cancelled.value}})

    async def move_reminders(self, event: EventInfo, due: datetime) -> None:
        """The time or place changed: remind again of the new version (a new sequence makes a new mail)."""
        await self.attendees.update_many(
            {"event_slug": event.slug, "event.sequence": {"$lt": event.sequence},
             "reminder": {"$in": [Reminder.scheduled.value, Reminder.sent.value]}},
            {"$set": {"event": event.model_dump(), "due_ts": due.timestamp(), "reminder": Reminder.scheduled.value,
                      "lease_until_ts": None}})

    async def take_due_reminder(self, now: datetime, lease: timedelta) -> Attendee | None:
        """One reminder come due (or left by a sweep whose lease ran out), taken with a lease."""
        doc = await self.attendees.find_one_and_update(
            {"$or": [{"reminder": Reminder.scheduled.value, "due_ts": {"$lte": now.timestamp()}},
                     {"reminder": Reminder.sending.value, "lease_until_ts": {"$lt": now.timestamp()}}]},
            {"$set": {"reminder": Reminder.sending.value, "lease_until_ts": (now + lease).timestamp()}},
            sort=[("due_ts", ASCENDING)], return_document=ReturnDocument.AFTER)
        return None if doc is None else attendee_from_doc(doc)

    async def reminder_done(self, registration_id: str) -> None:
        await self.attendees.update_one({"_id": registration_id, "reminder": Reminder.sending.value},
                                        {"$set": {"reminder": Reminder.sent.value, "lease_until_ts": None}})

    # --- unsubscriptions ------------------------------------------------------------------------------------

    async def unsubscribe(self, unsubscription: Unsubscription) -> None:
        try:
            await self.unsubscribes.insert_one(unsubscription_to_doc(unsubscription))
        except DuplicateKeyError:
            pass  # unsubscribed already

    async def is_unsubscribed(self, email: str, topic: Unsubscribe) -> bool:
        return await self.unsubscribes.find_one({"_id": unsubscribe_id(email, topic)}) is not None
