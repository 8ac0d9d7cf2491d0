"""The comments service's use cases: writing, editing and deleting comments, pages of a thread, moderation,
thread settings, export and import, erasure; with the messages they publish through the outbox and the per-thread
cache that their writes drop."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


from shared import addresses, logs
from shared.batching import GroupCommit
from shared.http import ApiError
from shared.messages import CloudEvent, make_event
from shared.messages.comments import (CommentDeleted, CommentErasureRequested, CommentPublished, CommentRejected,
                                      CommentStatus, CommentSubmitted, ParentComment)
from shared.messages.common import Language
from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.settings import KeyPurpose, Settings

from . import domain, models
from .cache import ThreadCache
from .config import CommentsConfig
from .domain import Action, BadCursor, BadToken, Purpose, Sort, text
from .models import (Created, Edited, ErasurePreview, Imported, NewComment, Page, Queue, QueuedComment, QueueQuery,
                     ThreadExport, ThreadInfo)
from .store import Collection, Duplicate, Store, after, identity

SOURCE = "/moteplass/comments"
KEY_PURPOSES = {Purpose.edit: KeyPurpose.comment_edit, Purpose.unsubscribe: KeyPurpose.comment_unsubscribe,
                Purpose.erase: KeyPurpose.comment_erase}


@dataclass
class Comments:
    """The use cases over the store, the outbox, the per-thread cache and the configuration. Refusals are
    ApiErrors with a message in the caller's language."""

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

    def key(self, purpose: Purpose) -> bytes:
        """The key that signs this purpose's tokens: each its own, so that an edit token is no erasure token."""
        return self.settings.key(KEY_PURPOSES[purpose])

    def publish_soon(self, doc: dict | None, collection: Collection | None = None) -> None:
        """Publish the document's outbox entries after the response; the relay retries whatever this misses."""
        if doc and doc.get("outbox"):
            self._flushing.add((self.store.comments if collection is None else collection, doc["_id"], doc["outbox"]))

    async def published(self) -> None:
        """Once what publish_soon was given is published (or left to the relay, should the broker fail)."""
        await self._flushing.settled()

    async def _flush_many(self, batch: list[tuple[Collection, object, list[dict]]]) -> list[None]:
        by_collection: dict[str, tuple[Collection, list]] = {}
        for collection, doc_id, entries in batch:
            by_collection.setdefault(collection.name, (collection, []))[1].append((doc_id, entries))
        for collection, docs in by_collection.values():
            await self.outbox.try_flush_many(collection, docs)
        return [None] * len(batch)

    def link(self, path: str) -> str:
        """An address on this service for a mail: each service's links go to its own public address."""
        return f"{self.settings.comments_public_url.rstrip('/')}{path}"

    def comment_url(self, doc: dict) -> str:
        """The comment's page: the comment in its thread."""
        return self.link(f"/comments/{doc['_id']}#kommentar-{doc['_id']}")

    def event(self, payload, doc: dict, actor: str | None = None) -> CloudEvent:
        """The message about a comment (`actor`: the moderator whose decision it is, if one's is)."""
        return make_event(payload, source=SOURCE, subject=str(doc["_id"]), correlation_id=logs.request_id.get(),
                          actor=actor)

    async def status_event(self, doc: dict, held_because: str | None = None, parent: dict | None = None,
                           actor: str | None = None) -> CloudEvent:
        """The message a comment's (new) status calls for (`parent`: the comment it answers, if already read;
        `actor`: the moderator whose decision it is)."""
        status = doc["status"]
        fields = dict(thread_id=doc["thread_id"], comment_id=str(doc["_id"]), author_name=doc["author_name"],
                      language=doc.get("language", Language.nn), excerpt=domain.excerpt(doc["html"]),
                      url=self.comment_url(doc), status=status)
        if status == CommentStatus.pending:
            return self.event(CommentSubmitted(
                **fields, held_because=held_because or "pre_moderation", moderator_emails=self.config.moderators,
                moderation_url=self.link("/moderation?status=pending")), doc)
        if status == CommentStatus.approved:
            return self.event(CommentPublished(**fields, parent=await self.parent_info(doc, parent)), doc, actor)
        return self.event(CommentRejected(**fields), doc, actor)

    async def parent_info(self, doc: dict, parent: dict | None = None) -> ParentComment | None:
        """Who the reply answers; their address only if they asked for reply mails and are not the replier."""
        if parent is None and doc.get("reply_to"):
            parent = await self.store.get(str(doc["reply_to"]))
        if parent is None or parent["status"] == CommentStatus.deleted:
            return None
        info = {"comment_id": str(parent["_id"]), "author_name": parent["author_name"],
                "language": parent.get("language", Language.nn)}
        if parent.get("notify_replies") and parent.get("email") and parent["email"] != doc.get("email"):
            token = domain.sign(self.key(Purpose.unsubscribe), Purpose.unsubscribe, str(parent["_id"]))
            info |= {"email": parent["email"], "unsubscribe_url":
                     self.link(f"/comments/{parent['_id']}/unsubscribe?token={token}")}
        return ParentComment(**info)

    async def apply(self, doc: dict, action: Action, by: str = "moderator", actor: str | None = None
                    ) -> dict | None:
        """A moderation (by the moderator `actor`), or the author's deletion, as one conditional write with its
        message; None if the comment was not in a state the action applies to, or someone else changed it
        first."""
        target, sources = domain.TRANSITIONS[action]
        if doc["status"] not in sources:
            return None
        changes: dict = {"status": target, "moderated_at": datetime.now(UTC)}
        if by == "moderator":
            changes["moderated_by"] = actor
        unset: tuple[str, ...] = ()
        if action == Action.delete:
            has_replies = await self.store.has_replies(doc)
            changes |= domain.deleted_fields() | {"listed": domain.listed(target, has_replies), "deleted_by": by}
            unset = ("fingerprint",)
            events = [self.event(CommentDeleted(thread_id=doc["thread_id"], comment_id=str(doc["_id"]), by=by,
                                                placeholder=has_replies), doc, actor)]
        else:
            changes["listed"] = domain.listed(target, False)
            events = [await self.status_event({**doc, **changes}, actor=actor)]
        updated = await self.store.update(doc["_id"], {"status": doc["status"]}, changes, events, unset)
        if updated is None:
            return None
        await self.count_reply(doc, was=doc["status"], now=target)
        self.changed(doc["thread_id"])
        self.publish_soon(updated)
        return updated

    async def erase(self, email: str) -> int:
        """Anonymise a person's comments (name → Anonym, email and IP dropped); texts and threads stay. Running it
        again changes nothing."""
        changed = await self.store.erase(email.lower(), domain.anonymised(), domain.ERASED_FIELDS)
        self.changed()
        return changed

    async def count_reply(self, doc: dict, was: CommentStatus | None, now: CommentStatus) -> None:
        """Keep the top-level comment's count of approved replies (it orders 'most replied')."""
        if doc.get("root_id") is None or (was == CommentStatus.approved) == (now == CommentStatus.approved):
            return
        await self.store.count_replies(doc["root_id"], 1 if now == CommentStatus.approved else -1)

    def changed(self, thread_id: str | None = None) -> None:
        """Every write that changes what a thread shows (its pages or settings; all threads: None) ends here, so
        this instance's cached copies go at once."""
        self.cache.drop(thread_id)

    def deliverable(self, email: str) -> None:
        """An address to be mailed must be one our mail server takes (shared.addresses)."""
        if problems := addresses.undeliverable("email", email, self.settings.smtp_utf8):
            raise ApiError(422, "Nokre felt er ikkje rett utfylte.", problems)

    # ---- public ----

    async def post(self, thread_id: str, new: NewComment, *, ip: str, language: Language) -> Created:
        """Write a comment or a reply: vetted (honeypot, links, moderation mode, known author), stored with its
        message unless the same text is already in the thread."""
        config = self.config
        if new.notify_replies:  # replies are mailed to the address
            self.deliverable(new.email)
        await self.limit(f"post:{ip}", config.posts_per_minute, timedelta(minutes=1), language)
        thread = await self.thread(thread_id)
        if thread is not None and (thread.get("closed") or thread.get("hidden")):
            raise ApiError(409, text("closed", language))
        if thread is None:
            await self.limit(f"thread:{ip}", config.new_threads_per_hour, timedelta(hours=1), language)
            await self.store.ensure_thread(thread_id)
            self.changed(thread_id)
        parent = None
        if new.parent_id is not None:
            parent = await self.store.get(new.parent_id)
            if parent is None or parent["thread_id"] != thread_id or parent["status"] != CommentStatus.approved:
                raise ApiError(422, "Nokre felt er ikkje rett utfylte.", [
                    {"field": "parent_id", "message": text("parent_not_found", language), "type": "parent_not_found"}])
        honeypot = bool(new.website.strip())
        known = config.auto_approve_known and not honeypot and await self.store.known_author(new.email)
        status, held = domain.initial_status(
            moderation=(thread or {}).get("moderation", "pre"), links=domain.count_links(new.body),
            max_links=config.max_links, honeypot=honeypot, known_author=known,
            auto_approve_known=config.auto_approve_known)
        now = datetime.now(UTC)
        # A bot resubmitting its text should not learn it was caught: its catches take no fingerprint.
        doc = domain.comment_doc(thread_id, new, identity=identity(now), parent=parent,
                                 max_depth=config.max_depth, status=status, ip=ip, now=now, fingerprinted=not honeypot)
        # Honeypot catches are silent.
        event = None if honeypot else await self.status_event(doc, held, parent)
        if not await self.insert(doc, [event] if event else []):
            raise ApiError(409, text("duplicate", language))
        await self.count_reply(doc, was=None, now=status)
        if doc["listed"]:
            self.changed(thread_id)
        self.publish_soon(doc)
        edit_until = now + timedelta(minutes=config.edit_minutes)
        shown = CommentStatus.pending if honeypot else status
        return Created(id=str(doc["_id"]), status=shown, html=doc["html"], message=text(f"thanks_{shown}", language),
                       edit_token=domain.sign(self.key(Purpose.edit), Purpose.edit, str(doc["_id"]), edit_until - now, now),
                       edit_until=edit_until)

    async def page(self, thread_id: str, sort: Sort, cursor: str | None, limit: int | None, language: Language
                   ) -> bytes:
        """A page of a thread as JSON: approved comments (and placeholders of deleted ones with replies),
        top-level paged, replies nested; from the cache when it has it."""
        size = limit or self.config.page_size

        async def build() -> bytes:
            # The cursor is decoded only here: a cached page is served without even that (a bad one is never
            # cached).
            start = after(sort, cursor)
            info = models.thread_info(thread_id, await self.thread(thread_id))
            roots = [] if info.hidden else await self.store.page(thread_id, sort, start, size + 1)
            more = len(roots) > size
            roots = roots[:size]
            # Only comments with replies (counted, or kept as placeholders) need the one query for replies.
            replies = await self.store.descendants(
                [str(r["_id"]) for r in roots if r.get("reply_count") or r["status"] == CommentStatus.deleted])
            page = Page(thread=info, comments=models.nest(roots, replies, self.config.nested_limit, language),
                        next_cursor=domain.encode_cursor(sort, roots[-1]) if more else None)
            return page.model_dump_json().encode()

        try:
            return await self.cache.get(thread_id, (sort, cursor, size, language), build)
        except BadCursor as exc:
            raise ApiError(400, text("cursor", language)) from exc

    async def counts(self, thread_ids: list[str]) -> dict[str, int]:
        """Approved comments per thread; a hidden thread counts 0."""
        found, hidden = await self.store.counts(thread_ids), await self.store.hidden_threads(thread_ids)
        return {t: 0 if t in hidden else found.get(t, 0) for t in thread_ids}

    # ---- the author's edit window and signed links ----

    async def edit(self, comment_id: str, body: str, token: str | None, language: Language) -> Edited:
        """The author's edit (with the comment's edit token), vetted again where a new comment would be."""
        doc = await self.found(comment_id, language)
        self.token_subject(Purpose.edit, token, language, str(doc["_id"]))
        if doc["status"] not in (CommentStatus.pending, CommentStatus.approved):
            raise ApiError(409, text("gone", language))
        changes = {"body": body, "html": domain.render(body), "edited_at": datetime.now(UTC),
                   "fingerprint": domain.fingerprint(body)}
        thread = await self.thread(doc["thread_id"]) or {}
        status, held = domain.status_after_edit(
            doc["status"], moderation=thread.get("moderation", "pre"), links=domain.count_links(body),
            max_links=self.config.max_links, auto_approve_known=self.config.auto_approve_known)
        events = []
        if status != doc["status"]:
            changes |= {"status": status, "listed": domain.listed(status, False)}
            events.append(await self.status_event({**doc, **changes}, held))
        try:
            updated = await self.store.update(doc["_id"], {"status": doc["status"]}, changes, events)
        except Duplicate as exc:
            raise ApiError(409, text("duplicate", language)) from exc
        if updated is None:
            raise ApiError(409, text("gone", language))
        await self.count_reply(doc, was=doc["status"], now=updated["status"])
        self.changed(doc["thread_id"])
        self.publish_soon(updated)
        return Edited(id=str(doc["_id"]), status=updated["status"], html=updated["html"])

    async def delete_own(self, comment_id: str, token: str | None, language: Language) -> None:
        """The author's deletion (with the comment's edit token); deleting twice is fine."""
        doc = await self.found(comment_id, language)
        self.token_subject(Purpose.edit, token, language, str(doc["_id"]))
        if doc["status"] != CommentStatus.deleted and await self.apply(doc, Action.delete, by="author") is None:
            raise ApiError(409, text("gone", language))

    async def unsubscribe(self, comment_id: str, token: str | None, language: Language) -> None:
        """Turn off reply mails for a comment (the signed link in a reply notice)."""
        doc = await self.found(comment_id, language)
        self.token_subject(Purpose.unsubscribe, token, language, str(doc["_id"]))
        await self.store.update(doc["_id"], {}, {"notify_replies": False}, [])

    async def found(self, comment_id: str, language: Language) -> dict:
        doc = await self.store.get(comment_id)
        if doc is None:
            raise ApiError(404, text("not_found", language))
        return doc

    def token_subject(self, purpose: Purpose, token: str | None, language: Language, subject: str | None = None
                      ) -> str:
        try:
            return domain.verify(self.key(purpose), purpose, token, subject)
        except BadToken as exc:
            raise ApiError(403, text("token", language)) from exc

    async def limit(self, key: str, allowed: int, window: timedelta, language: Language) -> None:
        await self.limits.enforce(key, allowed, window, text("rate", language))

    # ---- erasure on the author's request ----

    async def request_erasure(self, email: str, mail_language: Language, *, ip: str, language: Language) -> None:
        """Publish a signed erasure link for the address to be mailed (in mail_language), if it has comments (the
        caller never learns whether it has)."""
        self.deliverable(email)
        await self.limit(f"erasure:{ip}", self.config.posts_per_minute, timedelta(minutes=1), language)
        if count := await self.store.count_by_email(email):
            expires_at = datetime.now(UTC) + domain.ERASE_LINK_TTL
            token = domain.sign(self.key(Purpose.erase), Purpose.erase, email, domain.ERASE_LINK_TTL)
            event = make_event(CommentErasureRequested(
                email=email, language=mail_language, comment_count=count, expires_at=expires_at,
                erase_url=self.link(f"/erasure/confirm?token={token}&lang={mail_language.value}")), source=SOURCE,
                correlation_id=logs.request_id.get())
            self.publish_soon(await self.store.request_erasure(event), self.store.erasure_requests)

    async def preview_erasure(self, token: str, language: Language) -> ErasurePreview:
        email = self.token_subject(Purpose.erase, token, language)
        return ErasurePreview(comments=await self.store.count_by_email(email),
                              message=text("erasure_preview", language))

    async def erase_by_link(self, token: str, language: Language) -> int:
        return await self.erase(self.token_subject(Purpose.erase, token, language))

    # ---- moderation ----

    async def queue(self, query: QueueQuery, language: Language) -> Queue:
        """Comments in a status across threads, oldest first."""
        try:
            start = after(Sort.oldest, query.cursor)
        except BadCursor as exc:
            raise ApiError(400, text("cursor", language)) from exc
        docs = await self.store.queue(query.status, start, query.limit + 1)
        items = [QueuedComment(id=str(d["_id"]), thread_id=d["thread_id"], parent_id=d.get("parent_id"),
                               **{k: d.get(k) for k in ("author_name", "email", "body", "html", "status",
                                                        "created_at", "moderated_by")})
                 for d in docs[:query.limit]]
        more = len(docs) > query.limit
        return Queue(comments=items,
                     next_cursor=domain.encode_cursor(Sort.oldest, docs[query.limit - 1]) if more else None)

    async def moderate(self, comment_ids: list[str], action: Action, actor: str | None = None) -> dict[str, str]:
        """Per id: the new status, 'unchanged' or 'not_found' (actor: the moderator, recorded with each change)."""
        results: dict[str, str] = {}
        for comment_id in dict.fromkeys(comment_ids):
            doc = await self.store.get(comment_id)
            if doc is None:
                results[comment_id] = "not_found"
                continue
            updated = await self.apply(doc, action, actor=actor)
            results[comment_id] = updated["status"] if updated else "unchanged"
        return results

    async def change_thread(self, thread_id: str, changes: dict, actor: str | None = None) -> ThreadInfo:
        thread = await self.store.change_thread(thread_id, {**changes, "updated_by": actor})
        self.changed(thread_id)
        return models.thread_info(thread_id, thread)

    async def export_thread(self, thread_id: str) -> ThreadExport:
        docs = await self.store.thread_comments(thread_id)
        return ThreadExport(thread=models.thread_info(thread_id, await self.store.thread(thread_id)),
                            comments=[models.exported(d) for d in docs])

    async def import_thread(self, thread_id: str, comments: list[models.ExportedComment], actor: str | None = None
                            ) -> Imported:
        docs = [doc | {"imported_by": actor}
                for doc in domain.imported(thread_id, comments, self.config.max_depth, identity)]
        await self.store.ensure_thread(thread_id)
        count = sum(await self.store.insert_many([(doc, []) for doc in docs]))
        self.changed(thread_id)
        return Imported(imported=count, skipped=len(docs) - count)
