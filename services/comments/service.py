"""The comments service's use cases that more than one entrypoint shares: status changes with their messages,
erasure, publishing through the outbox, and the per-thread cache."""

from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from pymongo.asynchronous.collection import AsyncCollection

from shared.batching import GroupCommit
from shared.messages import CloudEvent, make_event
from shared.messages.comments import (CommentDeleted, CommentPublished, CommentRejected, CommentStatus,
                                      CommentSubmitted, ParentComment)
from shared.messages.common import Language
from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.settings import Settings

from . import domain
from .cache import ThreadCache
from .config import CommentsConfig
from .domain import Action, Purpose
from .store import Store

SOURCE = "/moteplass/comments"


@dataclass
class Comments:
    """What the handlers share: the store, the outbox, the per-thread cache and the configuration."""

    settings: Settings
    config: CommentsConfig
    store: Store
    outbox: Outbox
    cache: ThreadCache
    limits: RateLimits

    def __post_init__(self) -> None:
        # The hot path's writes are group commits (see shared.batching): under load, one store round trip counts
        # the rate limits of many requests (shared.ratelimit), one inserts their comments, one clears their
        # published events.
        self._inserting = GroupCommit(self.store.insert_many)
        self._flushing = GroupCommit(self._flush_many)

    async def insert(self, doc: dict, events: list[CloudEvent]) -> bool:
        """Store a new comment with its events; False if its text is already in the thread."""
        return await self._inserting.submit((doc, events))

    async def thread(self, thread_id: str) -> dict | None:
        """A thread's settings; a closed thread may take a cache TTL or two to refuse on other instances."""
        return await self.cache.get(thread_id, ("thread",), lambda: self.store.thread(thread_id))

    @property
    def secret(self) -> str:
        return self.settings.jwt_secret.get_secret_value()

    def publish_soon(self, doc: dict | None, collection: AsyncCollection | None = None) -> None:
        """Publish the document's outbox entries after the response; the relay retries whatever this misses."""
        if doc and doc.get("outbox"):
            self._flushing.add((self.store.comments if collection is None else collection, doc["_id"], doc["outbox"]))

    async def published(self) -> None:
        """Once what publish_soon was given is published (or left to the relay, should the broker fail)."""
        await self._flushing.settled()

    async def _flush_many(self, batch: list[tuple[AsyncCollection, object, list[dict]]]) -> list[None]:
        by_collection: dict[str, tuple[AsyncCollection, list]] = {}
        for collection, doc_id, entries in batch:
            by_collection.setdefault(collection.name, (collection, []))[1].append((doc_id, entries))
        for collection, docs in by_collection.values():
            await self.outbox.try_flush_many(collection, docs)
        return [None] * len(batch)

    def comment_url(self, doc: dict) -> str:
        return f"{self.settings.public_base_url}/{doc['thread_id'].lstrip('/')}#kommentar-{doc['_id']}"

    def event(self, payload, doc: dict, request: web.Request | None) -> CloudEvent:
        return make_event(payload, source=SOURCE, subject=str(doc["_id"]),
                          correlation_id=request.headers.get("X-Request-Id") if request else None)

    async def status_event(self, doc: dict, request: web.Request | None, held_because: str | None = None,
                           parent: dict | None = None) -> CloudEvent:
        """The message a comment's (new) status calls for (`parent`: the comment it answers, if already read)."""
        status = doc["status"]
        fields = dict(thread_id=doc["thread_id"], comment_id=str(doc["_id"]), author_name=doc["author_name"],
                      language=doc.get("language", Language.nn), excerpt=domain.excerpt(doc["html"]),
                      url=self.comment_url(doc), status=status)
        if status == CommentStatus.pending:
            return self.event(CommentSubmitted(
                **fields, held_because=held_because or "pre_moderation", moderator_emails=self.config.moderators,
                moderation_url=f"{self.settings.public_base_url}/moderation/comments?status=pending"), doc, request)
        if status == CommentStatus.approved:
            return self.event(CommentPublished(**fields, parent=await self.parent_info(doc, parent)), doc, request)
        return self.event(CommentRejected(**fields), doc, request)

    async def parent_info(self, doc: dict, parent: dict | None = None) -> ParentComment | None:
        """Who the reply answers; their address only if they asked for reply mails and are not the replier."""
        if parent is None and doc.get("reply_to"):
            parent = await self.store.get(str(doc["reply_to"]))
        if parent is None or parent["status"] == CommentStatus.deleted:
            return None
        info = {"comment_id": str(parent["_id"]), "author_name": parent["author_name"],
                "language": parent.get("language", Language.nn)}
        if parent.get("notify_replies") and parent.get("email") and parent["email"] != doc.get("email"):
            token = domain.sign(self.secret, Purpose.unsubscribe, str(parent["_id"]))
            info |= {"email": parent["email"], "unsubscribe_url":
                     f"{self.settings.public_base_url}/comments/{parent['_id']}/unsubscribe?token={token}"}
        return ParentComment(**info)

    async def apply(self, doc: dict, action: Action, request: web.Request | None, by: str = "moderator"
                    ) -> dict | None:
        """A moderation (or the author's deletion) as one conditional write with its message; None if the
        comment was not in a state the action applies to, or someone else changed it first."""
        target, sources = domain.TRANSITIONS[action]
        if doc["status"] not in sources:
            return None
        changes: dict = {"status": target, "moderated_at": datetime.now(UTC)}
        unset: tuple[str, ...] = ()
        if action == Action.delete:
            has_replies = await self.store.has_replies(doc)
            changes |= domain.deleted_fields() | {"listed": domain.listed(target, has_replies), "deleted_by": by}
            unset = ("fingerprint",)
            events = [self.event(CommentDeleted(thread_id=doc["thread_id"], comment_id=str(doc["_id"]), by=by,
                                                placeholder=has_replies), doc, request)]
        else:
            changes["listed"] = domain.listed(target, False)
            events = [await self.status_event({**doc, **changes}, request)]
        updated = await self.store.update(doc["_id"], {"status": doc["status"]}, changes, events, unset)
        if updated is None:
            return None
        await self.count_reply(doc, was=doc["status"], now=target)
        self.cache.drop(doc["thread_id"])
        self.publish_soon(updated)
        return updated

    async def erase(self, email: str) -> int:
        """Anonymise a person's comments (name → Anonym, email and IP dropped); texts and threads stay. Running it
        again changes nothing."""
        changed = await self.store.erase(email.lower(), domain.anonymised(), domain.ERASED_FIELDS)
        self.cache.drop()
        return changed

    async def count_reply(self, doc: dict, was: CommentStatus | None, now: CommentStatus) -> None:
        """Keep the top-level comment's count of approved replies (it orders 'most replied')."""
        if doc.get("root_id") is None or (was == CommentStatus.approved) == (now == CommentStatus.approved):
            return
        await self.store.count_replies(doc["root_id"], 1 if now == CommentStatus.approved else -1)
