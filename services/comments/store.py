"""All MongoDB access of the comments service. Every change is one single-document write; an event to publish
rides in the same write (transactional outbox)."""

from datetime import UTC, datetime

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared import outbox
from shared.messages import CloudEvent
from shared.messages.comments import CommentStatus
from shared.mongo import drop_retired_indexes, duplicates_in

from .domain import SORT_KEYS, Sort, decode_cursor


# A collection whose documents carry an outbox (the service names which one to publish from).
Collection = AsyncCollection


class Duplicate(Exception):
    """The text is already in the thread (the unique fingerprint index)."""


def object_id(value: str | None) -> ObjectId | None:
    try:
        return ObjectId(value) if value else None
    except (InvalidId, TypeError):
        return None


def identity(created_at: datetime) -> dict:
    """A comment's _id, dated to its creation (also for imported ones), and its sortable copy `order`."""
    oid = ObjectId(int(created_at.timestamp()).to_bytes(4, "big") + ObjectId().binary[4:])
    return {"_id": oid, "order": str(oid)}


def after(sort: Sort, cursor: str | None) -> dict:
    """The filter for 'strictly after the cursor' in the sort's lexicographic order."""
    if cursor is None:
        return {}
    values = decode_cursor(sort, cursor)
    keys = SORT_KEYS[sort]
    branches = []
    for i, (field, direction) in enumerate(keys):
        equal = {f: v for (f, _), v in zip(keys[:i], values[:i])}
        branches.append({**equal, field: {"$lt" if direction < 0 else "$gt": values[i]}})
    return branches[0] if len(branches) == 1 else {"$or": branches}


# Times set after a comment is written are stored as Unix seconds (`edited_ts`): nx-27017 turns a datetime that an
# update operator writes into a string (tests/store/divergences.py). Outside this module they are datetimes.
LATER_TIMES = {"edited_at": "edited_ts", "moderated_at": "moderated_ts"}


def to_doc(fields: dict) -> dict:
    return {LATER_TIMES.get(k, k): v.timestamp() if k in LATER_TIMES and v is not None else v
            for k, v in fields.items()}


def from_doc(doc: dict | None) -> dict | None:
    if doc is not None:
        for name, stored in LATER_TIMES.items():
            if (seconds := doc.pop(stored, None)) is not None:
                doc[name] = datetime.fromtimestamp(seconds, UTC)
        if "notify_replies" in doc:  # nx-27017 keeps a boolean an update operator wrote as 0 or 1
            doc["notify_replies"] = bool(doc["notify_replies"])
    return doc


# Fields a public page needs; the email, IP, fingerprint and outbox never leave the store on that path.
PAGE_FIELDS = {"parent_id": 1, "author_name": 1, "html": 1, "created_at": 1, "edited_ts": 1, "status": 1,
               "reply_count": 1, "root_id": 1, "depth": 1, "order": 1}


class Store:
    def __init__(self, db: AsyncDatabase):
        self.comments = db["comments"]
        self.threads = db["threads"]
        # Requests for an erasure link, kept only long enough to publish the message that mails it.
        self.erasure_requests = db["erasure_requests"]

    async def ensure_indexes(self) -> None:
        for sort in (Sort.newest, Sort.most_replied):  # oldest walks the newest index backwards
            await self.comments.create_index(
                [("thread_id", ASCENDING), ("depth", ASCENDING), ("listed", ASCENDING), *SORT_KEYS[sort]])
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

    # ---- threads ----

    async def thread(self, thread_id: str) -> dict | None:
        return await self.threads.find_one({"_id": thread_id})

    async def change_thread(self, thread_id: str, changes: dict) -> dict:
        # Made first, then changed: a findAndModify upsert on nx-27017 would leave out created_at ($setOnInsert).
        await self.ensure_thread(thread_id)
        return await self.threads.find_one_and_update({"_id": thread_id}, {"$set": changes},
                                                      return_document=ReturnDocument.AFTER)

    async def ensure_thread(self, thread_id: str) -> None:
        await self.threads.update_one({"_id": thread_id}, {"$setOnInsert": {"created_at": datetime.now(UTC)}},
                                      upsert=True)

    # ---- comments ----

    async def insert_many(self, batch: list[tuple[dict, list[CloudEvent]]]) -> list[bool]:
        """Insert comments, each with its events in its outbox, in one round trip; says of each whether it was
        stored (False: its text is already in its thread; the others are stored all the same)."""
        for doc, events in batch:
            # Every comment holds an outbox array: nx-27017 cannot add entries to a missing one.
            doc.update(outbox.holding([outbox.entry(e) for e in events]))
        if not batch:
            return []
        duplicates = await duplicates_in(self.comments.insert_many([to_doc(doc) for doc, _ in batch], ordered=False))
        return [i not in duplicates for i in range(len(batch))]

    async def get(self, comment_id: str) -> dict | None:
        oid = object_id(comment_id)
        return None if oid is None else from_doc(await self.comments.find_one({"_id": oid}, {"outbox": 0}))

    async def known_author(self, email: str) -> bool:
        return await self.comments.find_one({"email": email, "status": CommentStatus.approved}, {"_id": 1}) is not None

    async def update(self, comment_id: ObjectId, expect: dict, changes: dict, events: list[CloudEvent],
                     unset: tuple[str, ...] = ()) -> dict | None:
        """Apply changes if the comment still matches `expect`; None if it does not (someone was first). Raises
        Duplicate if the new text is already in the thread."""
        update: dict = {"$set": to_doc(changes)}
        if events:
            update |= outbox.add([outbox.entry(e) for e in events])
        if unset:
            update["$unset"] = {field: "" for field in unset}
        try:
            doc = await self.comments.find_one_and_update({"_id": comment_id, **expect}, update,
                                                          return_document=ReturnDocument.AFTER)
        except DuplicateKeyError as exc:
            raise Duplicate() from exc
        # nx-27017 answers a write that the unique index refuses as a miss, without an error: tell them apart.
        if doc is None and "fingerprint" in changes and await self._text_taken(comment_id, changes["fingerprint"]):
            raise Duplicate()
        return from_doc(doc)

    async def _text_taken(self, comment_id: ObjectId, fingerprint: str) -> bool:
        own = await self.comments.find_one({"_id": comment_id}, {"thread_id": 1})
        return own is not None and await self.comments.find_one(
            {"thread_id": own["thread_id"], "fingerprint": fingerprint, "_id": {"$ne": comment_id}},
            {"_id": 1}) is not None

    async def count_replies(self, comment_id: str, delta: int) -> None:
        await self.comments.update_one({"_id": ObjectId(comment_id)}, {"$inc": {"reply_count": delta}})

    async def has_replies(self, doc: dict) -> bool:
        # Its replies share its root (see domain.placement), so the root_id index finds them: no parent_id index
        # for every insert to keep up.
        found = await self.comments.find_one(
            {"root_id": doc["root_id"] or str(doc["_id"]), "parent_id": str(doc["_id"]),
             "status": {"$in": [CommentStatus.approved, CommentStatus.pending]}}, {"_id": 1})
        return found is not None

    async def forget_ips(self, written_before: datetime) -> int:
        """Data minimisation: drop the client IP of comments written before then."""
        result = await self.comments.update_many({"created_at": {"$lt": written_before}, "ip": {"$type": "string"}},
                                                 {"$unset": {"ip": ""}})
        return result.modified_count

    async def page(self, thread_id: str, sort: Sort, after: dict, limit: int) -> list[dict]:
        cursor = self.comments.find({"thread_id": thread_id, "depth": 0, "listed": True, **after}, PAGE_FIELDS)
        return [from_doc(doc) for doc in await cursor.sort(SORT_KEYS[sort]).limit(limit).to_list()]

    async def descendants(self, root_ids: list[str]) -> list[dict]:
        """Every listed reply under the given top-level comments, in one query."""
        if not root_ids:
            return []
        docs = await self.comments.find({"root_id": {"$in": root_ids}, "listed": True}, PAGE_FIELDS).to_list()
        return [from_doc(doc) for doc in docs]

    async def counts(self, thread_ids: list[str]) -> dict[str, int]:
        cursor = await self.comments.aggregate([
            {"$match": {"thread_id": {"$in": thread_ids}, "status": CommentStatus.approved}},
            {"$group": {"_id": "$thread_id", "n": {"$sum": 1}}}])
        rows = await cursor.to_list()
        return {row["_id"]: row["n"] for row in rows}

    async def hidden_threads(self, thread_ids: list[str]) -> set[str]:
        return {doc["_id"] for doc in await self.threads.find({"_id": {"$in": thread_ids}, "hidden": True},
                                                              {"_id": 1}).to_list()}

    async def queue(self, status: CommentStatus, after: dict, limit: int) -> list[dict]:
        cursor = self.comments.find({"status": status, **after}, {"outbox": 0, "fingerprint": 0})
        return [from_doc(doc) for doc in await cursor.sort(SORT_KEYS[Sort.oldest]).limit(limit).to_list()]

    async def thread_comments(self, thread_id: str) -> list[dict]:
        cursor = self.comments.find({"thread_id": thread_id}, {"outbox": 0})
        return [from_doc(doc) for doc in await cursor.sort(SORT_KEYS[Sort.oldest]).to_list()]

    async def count_by_email(self, email: str) -> int:
        return await self.comments.count_documents({"email": email})

    async def request_erasure(self, event: CloudEvent) -> dict:
        doc = {"_id": event.id, "created_at": datetime.now(UTC), **outbox.holding([outbox.entry(event)])}
        await self.erasure_requests.insert_one(doc)
        return doc

    async def erase(self, email: str, changes: dict, unset: tuple[str, ...]) -> int:
        result = await self.comments.update_many(
            {"email": email}, {"$set": changes, "$unset": {field: "" for field in unset}})
        return result.modified_count

