"""All MongoDB access of the comments service, and the one module that knows how its data is stored: the use
cases see comments, threads and erasure requests (domain.Comment, Thread, ErasureRequest) with datetimes and id
strings; to_doc and from_doc turn them into documents and back. Every change is one single-document write; an
event to publish rides in the same write (transactional outbox).

The documents are ones MongoDB and nx-27017 0.8.1 read alike (tests/store/divergences.py):
- A comment's `_id` is an ObjectId dated to the comment's creation, so ids sort in creation order; an imported
  comment's is also derived from its thread and the id it had in the export (imported_id), so that `_id` refuses
  the same comment imported twice. Its hex string is the id everywhere else: in `order`, a copy that every sort
  ends in (nx-27017 cannot index `_id` together with other fields), and in references between comments (nx-27017
  neither indexes nor matches ObjectIds outside `_id`).
- Times set after a comment is written are Unix seconds (`edited_ts`, `moderated_ts`): nx-27017 turns a datetime
  that an update operator writes into a string.
- Flags are read back as booleans: nx-27017 keeps a boolean that an update operator wrote as 0 or 1.
- A field that is None is not stored (a change to None unsets it): the unique index on the fingerprint covers
  only comments that have one, and an erased address or IP leaves nothing behind."""

import hashlib
import json
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import outbox
from shared.messages import CloudEvent
from shared.messages.comments import CommentStatus
from shared.messages.common import Language
from shared.mongo import drop_retired_indexes, duplicates_in

from .domain import SORT_KEYS, Comment, ErasureRequest, Sort, Thread, ThreadEntry

Document = TypeVar("Document", ThreadEntry, Comment, Thread)
# Where a document's outbox entries are published from: (its collection, its _id, the entries), as
# shared.outbox.Outbox.try_flush_many takes them.
Outgoing = tuple[AsyncCollection, object, list[dict]]


class Duplicate(Exception):
    """The text is already in the thread (the unique fingerprint index)."""


def object_id(value: str | None) -> ObjectId | None:
    try:
        return ObjectId(value) if value else None
    except (InvalidId, TypeError):
        return None


# ---- to_doc / from_doc ------------------------------------------------------------------------------------------

# Fields stored under another name: the id's copy that sorts, and times as Unix seconds.
STORED_AS = {"id": "order", "edited_at": "edited_ts", "moderated_at": "moderated_ts"}
WRITE = {"edited_at": datetime.timestamp, "moderated_at": datetime.timestamp}


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


READ = {"edited_at": _moment, "moderated_at": _moment, "status": CommentStatus, "language": Language,
        **dict.fromkeys(("listed", "notify_replies", "erased", "closed", "hidden"), bool)}
# The fields of each kind of document, but its id (which is `_id`).
FIELDS = {kind: tuple(f.name for f in fields(kind) if f.name != "id") for kind in (ThreadEntry, Comment, Thread)}


def _stored(values: dict) -> dict:
    return {STORED_AS.get(name, name): WRITE[name](value) if name in WRITE else value
            for name, value in values.items() if value is not None}


def to_doc(comment: Comment) -> dict:
    """A new comment as stored, with its outbox."""
    values = {name: getattr(comment, name) for name in FIELDS[Comment] if name != "outbox"}
    return {"_id": ObjectId(comment.id), "order": comment.id, **_stored(values), **outbox.holding(comment.outbox)}


def from_doc(doc: dict, kind: type[Document] = Comment) -> Document:
    """A stored document (or the part of it that was read) as the domain sees it."""
    values = {}
    for name in FIELDS[kind]:
        if (value := doc.get(STORED_AS.get(name, name))) is not None:
            values[name] = READ[name](value) if name in READ else value
    return kind(id=str(doc["_id"]), **values)


def changed(changes: dict) -> dict:
    """The update that makes these changes to a document's fields (None: the field goes)."""
    update = {}
    if to_set := _stored(changes):
        update["$set"] = to_set
    if gone := [STORED_AS.get(name, name) for name, value in changes.items() if value is None]:
        update["$unset"] = dict.fromkeys(gone, "")
    return update


def new_id(created_at: datetime) -> str:
    """A new comment's id, dated to its creation."""
    return str(ObjectId(int(created_at.timestamp()).to_bytes(4, "big") + ObjectId().binary[4:]))


def imported_id(thread_id: str, exported_id: str, created_at: datetime) -> str:
    """An imported comment's id: dated to its creation as finely as the export says (an import's comments keep
    their order; MongoDB keeps milliseconds), the rest derived from the thread and the id the comment had in the
    export. Importing the same export again makes the same ids, which `_id` refuses whatever became of the
    comments meanwhile: a deleted or spam comment keeps no fingerprint to be refused by."""
    source = hashlib.sha256(json.dumps([thread_id, exported_id]).encode()).digest()
    return str(ObjectId(int(created_at.timestamp()).to_bytes(4, "big") + created_at.microsecond.to_bytes(3, "big")
                        + source[:5]))


def sort_keys(sort: Sort) -> list[tuple[str, int]]:
    return [(STORED_AS.get(name, name), direction) for name, direction in SORT_KEYS[sort]]


def after(sort: Sort, values: list | None) -> dict:
    """The filter for 'strictly after the cursor's values' (domain.decode_cursor) in the sort's lexicographic
    order."""
    if values is None:
        return {}
    keys = sort_keys(sort)
    branches = []
    for i, (field, direction) in enumerate(keys):
        equal = {f: v for (f, _), v in zip(keys[:i], values[:i])}
        branches.append({**equal, field: {"$lt" if direction < 0 else "$gt": values[i]}})
    return branches[0] if len(branches) == 1 else {"$or": branches}


# What a public page reads; the email, IP, fingerprint and outbox never leave the store on that path.
PAGE_FIELDS = dict.fromkeys((STORED_AS.get(name, name) for name in FIELDS[ThreadEntry]), 1)
NO_OUTBOX = {outbox.FIELD: 0}


class Store:
    new_id = staticmethod(new_id)
    imported_id = staticmethod(imported_id)

    def __init__(self, db: AsyncDatabase):
        self.comments = db["comments"]
        self.threads = db["threads"]
        self.erasure_requests = db["erasure_requests"]

    async def ensure_indexes(self) -> None:
        for sort in (Sort.newest, Sort.most_replied):  # oldest walks the newest index backwards
            await self.comments.create_index(
                [("thread_id", ASCENDING), ("depth", ASCENDING), ("listed", ASCENDING), *sort_keys(sort)])
        # The dev store (nx-27017) uses single-field indexes only; MongoDB prefers the compound ones above.
        await self.comments.create_index("order")
        await self.comments.create_index("root_id")
        await drop_retired_indexes(self.comments, [[("parent_id", ASCENDING)]])  # replies are found through root_id
        await self.comments.create_index([("status", ASCENDING), ("order", ASCENDING)])
        await self.comments.create_index([("thread_id", ASCENDING), ("status", ASCENDING)])
        await self.comments.create_index([("email", ASCENDING), ("status", ASCENDING)])
        # The same text twice in a thread is refused atomically; deleted comments give their text back.
        await self.comments.create_index([("thread_id", ASCENDING), ("fingerprint", ASCENDING)], unique=True,
                                         partialFilterExpression={"fingerprint": {"$exists": True}})
        await self.erasure_requests.create_index("created_at", expireAfterSeconds=7 * 24 * 3600)

    def outgoing(self, doc: Comment | ErasureRequest) -> Outgoing:
        """Where the outbox entries a write left on this document are published from."""
        if isinstance(doc, ErasureRequest):
            return self.erasure_requests, doc.id, doc.outbox
        return self.comments, ObjectId(doc.id), doc.outbox

    # ---- threads ----

    async def thread(self, thread_id: str) -> Thread | None:
        doc = await self.threads.find_one({"_id": thread_id})
        return None if doc is None else from_doc(doc, Thread)

    async def change_thread(self, thread_id: str, changes: dict) -> Thread:
        # Made first, then changed: a findAndModify upsert on nx-27017 would leave out created_at ($setOnInsert).
        await self.ensure_thread(thread_id)
        return from_doc(await self.threads.find_one_and_update({"_id": thread_id}, changed(changes),
                                                               return_document=ReturnDocument.AFTER), Thread)

    async def ensure_thread(self, thread_id: str) -> None:
        await self.threads.update_one({"_id": thread_id}, {"$setOnInsert": {"created_at": datetime.now(UTC)}},
                                      upsert=True)

    # ---- comments ----

    async def insert_many(self, batch: list[tuple[Comment, list[CloudEvent]]]) -> list[Comment | None]:
        """Insert comments, each with its events in its outbox, in one round trip; answers each as stored (with
        its outbox), or None when its id is already stored (an imported comment imported again) or its text is
        already in its thread (the others are stored all the same)."""
        comments = [replace(comment, outbox=[outbox.entry(e) for e in events]) for comment, events in batch]
        if not comments:
            return []
        duplicates = await duplicates_in(self.comments.insert_many([to_doc(c) for c in comments], ordered=False))
        return [None if i in duplicates else comment for i, comment in enumerate(comments)]

    async def in_thread(self, thread_id: str, comment_ids: list[str]) -> set[str]:
        """Which of these ids are comments of the thread."""
        oids = [oid for oid in map(object_id, comment_ids) if oid is not None]
        found = self.comments.find({"_id": {"$in": oids}, "thread_id": thread_id}, {"_id": 1})
        return {str(doc["_id"]) async for doc in found}

    async def get(self, comment_id: str) -> Comment | None:
        oid = object_id(comment_id)
        doc = None if oid is None else await self.comments.find_one({"_id": oid}, NO_OUTBOX)
        return None if doc is None else from_doc(doc)

    async def known_author(self, email: str) -> bool:
        return await self.comments.find_one({"email": email, "status": CommentStatus.approved}, {"_id": 1}) is not None

    async def update(self, comment_id: str, changes: dict, events: list[CloudEvent],
                     if_status: CommentStatus | None = None) -> Comment | None:
        """Apply changes (field: new value, None to drop it) to the comment, if it is still in `if_status` (when
        given); None if it is not (someone was first). Raises Duplicate if the new text is already in the
        thread."""
        oid = ObjectId(comment_id)
        update = changed(changes)
        if events:
            update |= outbox.add([outbox.entry(e) for e in events])
        expect = {} if if_status is None else {"status": if_status}
        try:
            doc = await self.comments.find_one_and_update({"_id": oid, **expect}, update,
                                                          return_document=ReturnDocument.AFTER)
        except DuplicateKeyError as exc:
            raise Duplicate() from exc
        # nx-27017 answers a write that the unique index refuses as a miss, without an error: tell them apart.
        if doc is None and changes.get("fingerprint") and await self._text_taken(oid, changes["fingerprint"]):
            raise Duplicate()
        return None if doc is None else from_doc(doc)

    async def _text_taken(self, comment_id: ObjectId, fingerprint: str) -> bool:
        own = await self.comments.find_one({"_id": comment_id}, {"thread_id": 1})
        return own is not None and await self.comments.find_one(
            {"thread_id": own["thread_id"], "fingerprint": fingerprint, "_id": {"$ne": comment_id}},
            {"_id": 1}) is not None

    async def count_replies(self, comment_id: str, delta: int) -> None:
        await self.comments.update_one({"_id": ObjectId(comment_id)}, {"$inc": {"reply_count": delta}})

    async def has_replies(self, comment: Comment) -> bool:
        """Whether a reply to the comment is approved or waits for moderation."""
        # Its replies share its root (see domain.placement), so the root_id index finds them: no parent_id index
        # for every insert to keep up.
        found = await self.comments.find_one(
            {"root_id": comment.root_id or comment.id, "parent_id": comment.id,
             "status": {"$in": [CommentStatus.approved, CommentStatus.pending]}}, {"_id": 1})
        return found is not None

    async def forget_ips(self, written_before: datetime) -> int:
        """Data minimisation: drop the client IP of comments written before then."""
        result = await self.comments.update_many({"created_at": {"$lt": written_before}, "ip": {"$type": "string"}},
                                                 {"$unset": {"ip": ""}})
        return result.modified_count

    async def page(self, thread_id: str, sort: Sort, cursor: list | None, limit: int) -> list[ThreadEntry]:
        """Listed top-level comments of a thread in the sort's order, from after the cursor's values."""
        found = self.comments.find({"thread_id": thread_id, "depth": 0, "listed": True, **after(sort, cursor)},
                                   PAGE_FIELDS)
        return [from_doc(doc, ThreadEntry) for doc in await found.sort(sort_keys(sort)).limit(limit).to_list()]

    async def descendants(self, root_ids: list[str]) -> list[ThreadEntry]:
        """Every listed reply under the given top-level comments, in one query."""
        if not root_ids:
            return []
        docs = await self.comments.find({"root_id": {"$in": root_ids}, "listed": True}, PAGE_FIELDS).to_list()
        return [from_doc(doc, ThreadEntry) for doc in docs]

    async def counts(self, thread_ids: list[str]) -> dict[str, int]:
        cursor = await self.comments.aggregate([
            {"$match": {"thread_id": {"$in": thread_ids}, "status": CommentStatus.approved}},
            {"$group": {"_id": "$thread_id", "n": {"$sum": 1}}}])
        rows = await cursor.to_list()
        return {row["_id"]: row["n"] for row in rows}

    async def hidden_threads(self, thread_ids: list[str]) -> set[str]:
        return {doc["_id"] for doc in await self.threads.find({"_id": {"$in": thread_ids}, "hidden": True},
                                                              {"_id": 1}).to_list()}

    async def queue(self, status: CommentStatus, cursor: list | None, limit: int) -> list[Comment]:
        """Comments in a status across threads, oldest first, from after the cursor's values."""
        found = self.comments.find({"status": status, **after(Sort.oldest, cursor)}, NO_OUTBOX)
        return [from_doc(doc) for doc in await found.sort(sort_keys(Sort.oldest)).limit(limit).to_list()]

    async def thread_comments(self, thread_id: str) -> list[Comment]:
        found = self.comments.find({"thread_id": thread_id}, NO_OUTBOX)
        return [from_doc(doc) for doc in await found.sort(sort_keys(Sort.oldest)).to_list()]

    async def count_by_email(self, email: str) -> int:
        return await self.comments.count_documents({"email": email})

    async def request_erasure(self, event: CloudEvent) -> ErasureRequest:
        request = ErasureRequest(id=event.id, created_at=datetime.now(UTC), outbox=[outbox.entry(event)])
        await self.erasure_requests.insert_one(
            {"_id": request.id, "created_at": request.created_at, **outbox.holding(request.outbox)})
        return request

    async def erase(self, email: str, changes: dict) -> int:
        """Apply changes (as `update` takes them) to every comment written with the address."""
        result = await self.comments.update_many({"email": email}, changed(changes))
        return result.modified_count
