"""The comments service's use cases: writing, editing and deleting comments, pages of a thread, moderation,
thread settings, export and import, erasure; with the messages they publish through the outbox and the per-thread
cache that their writes drop."""

from dataclasses import dataclass, replace
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
from .domain import Action, BadCursor, BadToken, Comment, ErasureRequest, Purpose, Sort, Thread, text
from .models import (Created, Edited, ErasurePreview, ExportedComment, Imported, NewComment, Page, Queue, QueueQuery,
                     QueuedComment, ThreadExport, ThreadInfo)
from .store import Duplicate, Outgoing, Store

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

    async def insert(self, comment: Comment, events: list[CloudEvent]) -> Comment | None:
        """Store a new comment with its events; None if its text is already in the thread."""
        return await self._inserting.submit((comment, events))

    async def thread(self, thread_id: str) -> Thread | None:
        """A thread's settings; a closed thread may take a cache TTL or two to refuse on other instances."""
        return await self.cache.get(thread_id, ("thread",), lambda: self.store.thread(thread_id))

    def key(self, purpose: Purpose) -> bytes:
        """The key that signs this purpose's tokens: each its own, so that an edit token is no erasure token."""
        return self.settings.key(KEY_PURPOSES[purpose])

    def publish_soon(self, written: Comment | ErasureRequest | None) -> None:
        """Publish the outbox entries a write left on a comment or request after the response; the relay retries
        whatever this misses."""
        if written is not None and written.outbox:
            self._flushing.add(self.store.outgoing(written))

    async def published(self) -> None:
        """Once what publish_soon was given is published (or left to the relay, should the broker fail)."""
        await self._flushing.settled()

    async def _flush_many(self, batch: list[Outgoing]) -> list[None]:
        by_collection: dict = {}
        for collection, doc_id, entries in batch:
            by_collection.setdefault(collection, []).append((doc_id, entries))
        for collection, docs in by_collection.items():
            await self.outbox.try_flush_many(collection, docs)
        return [None] * len(batch)

    def link(self, path: str) -> str:
        """An address on this service for a mail: each service's links go to its own public address."""
        return f"{self.settings.comments_public_url.rstrip('/')}{path}"

    def comment_url(self, comment: Comment) -> str:
        """The comment's page: the comment in its thread."""
        return self.link(f"/comments/{comment.id}#kommentar-{comment.id}")

    def event(self, payload, comment: Comment, actor: str | None = None) -> CloudEvent:
        """The message about a comment (`actor`: the moderator whose decision it is, if one's is)."""
        return make_event(payload, source=SOURCE, subject=comment.id, correlation_id=logs.request_id.get(),
                          actor=actor)

    async def status_event(self, comment: Comment, held_because: str | None = None, parent: Comment | None = None,
                           actor: str | None = None) -> CloudEvent:
        """The message a comment's (new) status calls for (`parent`: the comment it answers, if already read;
        `actor`: the moderator whose decision it is)."""
        fields = dict(thread_id=comment.thread_id, comment_id=comment.id, author_name=comment.author_name,
                      language=comment.language, excerpt=domain.excerpt(comment.html),
                      url=self.comment_url(comment), status=comment.status)
        if comment.status == CommentStatus.pending:
            return self.event(CommentSubmitted(
                **fields, held_because=held_because or "pre_moderation", moderator_emails=self.config.moderators,
                moderation_url=self.link("/moderation?status=pending")), comment)
        if comment.status == CommentStatus.approved:
            return self.event(CommentPublished(**fields, parent=await self.parent_info(comment, parent)), comment,
                              actor)
        return self.event(CommentRejected(**fields), comment, actor)

    async def parent_info(self, comment: Comment, parent: Comment | None = None) -> ParentComment | None:
        """Who the reply answers; their address only if they asked for reply mails and are not the replier."""
        if parent is None and comment.reply_to:
            parent = await self.store.get(comment.reply_to)
        if parent is None or parent.status == CommentStatus.deleted:
            return None
        info = {"comment_id": parent.id, "author_name": parent.author_name, "language": parent.language}
        if parent.notify_replies and parent.email and parent.email != comment.email:
            token = domain.sign(self.key(Purpose.unsubscribe), Purpose.unsubscribe, parent.id)
            info |= {"email": parent.email, "unsubscribe_url":
                     self.link(f"/comments/{parent.id}/unsubscribe?token={token}")}
        return ParentComment(**info)

    async def parent(self, comment: Comment) -> Comment | None:
        """The comment this one sits under, if any."""
        return None if comment.parent_id is None else await self.store.get(comment.parent_id)

    async def apply(self, comment: Comment, action: Action, by: str = "moderator", actor: str | None = None
                    ) -> Comment | None:
        """A moderation (by the moderator `actor`), or the author's deletion, as one conditional write with its
        message; None if the comment was not in a state the action applies to, or someone else changed it
        first."""
        target, sources = domain.TRANSITIONS[action]
        if comment.status not in sources:
            return None
        changes: dict = {"status": target, "moderated_at": datetime.now(UTC)}
        if by == "moderator":
            changes["moderated_by"] = actor
        if action == Action.delete:
            has_replies = await self.store.has_replies(comment)
            changes |= domain.deleted_fields() | {"listed": domain.listed(target, has_replies), "deleted_by": by}
            events = [self.event(CommentDeleted(thread_id=comment.thread_id, comment_id=comment.id, by=by,
                                                placeholder=has_replies), comment, actor)]
        else:
            changes["listed"] = domain.listed(target, False)
            events = [await self.status_event(replace(comment, **changes), actor=actor)]
        updated = await self.store.update(comment.id, changes, events, if_status=comment.status)
        if updated is None:
            return None
        await self.count_reply(comment, was=comment.status, now=target)
        self.changed(comment.thread_id)
        self.publish_soon(updated)
        return updated

    async def erase(self, email: str) -> int:
        """Anonymise a person's comments (name → Anonym, email and IP dropped); texts and threads stay. Running it
        again changes nothing."""
        changed = await self.store.erase(email.lower(), domain.anonymised())
        self.changed()
        return changed

    async def forget_ips(self) -> int:
        """Data minimisation: drop the client IP of comments older than COMMENTS_IP_RETENTION_DAYS."""
        return await self.store.forget_ips(datetime.now(UTC) - timedelta(days=self.config.ip_retention_days))

    async def count_reply(self, comment: Comment, was: CommentStatus | None, now: CommentStatus) -> None:
        """Keep the top-level comment's count of approved replies (it orders 'most replied')."""
        if comment.root_id is None or (was == CommentStatus.approved) == (now == CommentStatus.approved):
            return
        await self.store.count_replies(comment.root_id, 1 if now == CommentStatus.approved else -1)

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
        if thread is not None and (thread.closed or thread.hidden):
            raise ApiError(409, text("closed", language))
        if thread is None:
            await self.limit(f"thread:{ip}", config.new_threads_per_hour, timedelta(hours=1), language)
            await self.store.ensure_thread(thread_id)
            self.changed(thread_id)
        parent = None
        if new.parent_id is not None:
            parent = await self.store.get(new.parent_id)
            if parent is None or parent.thread_id != thread_id or parent.status != CommentStatus.approved:
                raise ApiError(422, "Nokre felt er ikkje rett utfylte.", [
                    {"field": "parent_id", "message": text("parent_not_found", language), "type": "parent_not_found"}])
        honeypot = bool(new.website.strip())
        known = config.auto_approve_known and not honeypot and await self.store.known_author(new.email)
        status, held = domain.initial_status(
            moderation=(thread or Thread(id=thread_id)).moderation, links=domain.count_links(new.body),
            max_links=config.max_links, honeypot=honeypot, known_author=known,
            auto_approve_known=config.auto_approve_known)
        now = datetime.now(UTC)
        # A bot resubmitting its text should not learn it was caught: its catches take no fingerprint.
        comment = domain.new_comment(thread_id, new, id=self.store.new_id(now), parent=parent,
                                     max_depth=config.max_depth, status=status, ip=ip, now=now,
                                     fingerprinted=not honeypot)
        # Honeypot catches are silent.
        event = None if honeypot else await self.status_event(comment, held, parent)
        stored = await self.insert(comment, [event] if event else [])
        if stored is None:
            raise ApiError(409, text("duplicate", language))
        await self.count_reply(comment, was=None, now=status)
        if comment.listed:
            self.changed(thread_id)
        self.publish_soon(stored)
        edit_until = now + timedelta(minutes=config.edit_minutes)
        shown = CommentStatus.pending if honeypot else status
        return Created(id=comment.id, status=shown, html=comment.html, message=text(f"thanks_{shown}", language),
                       edit_token=domain.sign(self.key(Purpose.edit), Purpose.edit, comment.id, edit_until - now, now),
                       edit_until=edit_until)

    async def page(self, thread_id: str, sort: Sort, cursor: str | None, limit: int | None, language: Language
                   ) -> bytes:
        """A page of a thread as JSON: approved comments (and placeholders of deleted ones with replies),
        top-level paged, replies nested; from the cache when it has it."""
        size = limit or self.config.page_size

        async def build() -> bytes:
            # The cursor is decoded only here: a cached page is served without even that (a bad one is never
            # cached).
            start = None if cursor is None else domain.decode_cursor(sort, cursor)
            info = models.thread_info(thread_id, await self.thread(thread_id))
            roots = [] if info.hidden else await self.store.page(thread_id, sort, start, size + 1)
            more = len(roots) > size
            roots = roots[:size]
            # Only comments with replies (counted, or kept as placeholders) need the one query for replies.
            replies = await self.store.descendants(
                [r.id for r in roots if r.reply_count or r.status == CommentStatus.deleted])
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
        comment = await self.found(comment_id, language)
        self.token_subject(Purpose.edit, token, language, comment.id)
        if comment.status not in (CommentStatus.pending, CommentStatus.approved):
            raise ApiError(409, text("gone", language))
        changes = {"body": body, "html": domain.render(body), "edited_at": datetime.now(UTC),
                   "fingerprint": domain.fingerprint(body)}
        thread = await self.thread(comment.thread_id) or Thread(id=comment.thread_id)
        status, held = domain.status_after_edit(
            comment.status, moderation=thread.moderation, links=domain.count_links(body),
            max_links=self.config.max_links, auto_approve_known=self.config.auto_approve_known)
        events = []
        if status != comment.status:
            changes |= {"status": status, "listed": domain.listed(status, False)}
            events.append(await self.status_event(replace(comment, **changes), held))
        try:
            updated = await self.store.update(comment.id, changes, events, if_status=comment.status)
        except Duplicate as exc:
            raise ApiError(409, text("duplicate", language)) from exc
        if updated is None:
            raise ApiError(409, text("gone", language))
        await self.count_reply(comment, was=comment.status, now=updated.status)
        self.changed(comment.thread_id)
        self.publish_soon(updated)
        return Edited(id=comment.id, status=updated.status, html=updated.html)

    async def delete_own(self, comment_id: str, token: str | None, language: Language) -> None:
        """The author's deletion (with the comment's edit token); deleting twice is fine."""
        comment = await self.found(comment_id, language)
        self.token_subject(Purpose.edit, token, language, comment.id)
        if comment.status != CommentStatus.deleted and await self.apply(comment, Action.delete, by="author") is None:
            raise ApiError(409, text("gone", language))

    async def unsubscribe(self, comment_id: str, token: str | None, language: Language) -> None:
        """Turn off reply mails for a comment (the signed link in a reply notice)."""
        comment = await self.found(comment_id, language)
        self.token_subject(Purpose.unsubscribe, token, language, comment.id)
        await self.store.update(comment.id, {"notify_replies": False}, [])

    async def found(self, comment_id: str, language: Language) -> Comment:
        comment = await self.store.get(comment_id)
        if comment is None:
            raise ApiError(404, text("not_found", language))
        return comment

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
            self.publish_soon(await self.store.request_erasure(event))

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
            start = None if query.cursor is None else domain.decode_cursor(Sort.oldest, query.cursor)
        except BadCursor as exc:
            raise ApiError(400, text("cursor", language)) from exc
        found = await self.store.queue(query.status, start, query.limit + 1)
        more = len(found) > query.limit
        return Queue(comments=[QueuedComment.model_validate(c, from_attributes=True) for c in found[:query.limit]],
                     next_cursor=domain.encode_cursor(Sort.oldest, found[query.limit - 1]) if more else None)

    async def moderate(self, comment_ids: list[str], action: Action, actor: str | None = None) -> dict[str, str]:
        """Per id: the new status, 'unchanged' or 'not_found' (actor: the moderator, recorded with each change)."""
        results: dict[str, str] = {}
        for comment_id in dict.fromkeys(comment_ids):
            comment = await self.store.get(comment_id)
            if comment is None:
                results[comment_id] = "not_found"
                continue
            updated = await self.apply(comment, action, actor=actor)
            results[comment_id] = updated.status if updated else "unchanged"
        return results

    async def change_thread(self, thread_id: str, changes: dict, actor: str | None = None) -> ThreadInfo:
        thread = await self.store.change_thread(thread_id, {**changes, "updated_by": actor})
        self.changed(thread_id)
        return models.thread_info(thread_id, thread)

    async def export_thread(self, thread_id: str) -> ThreadExport:
        comments = await self.store.thread_comments(thread_id)
        return ThreadExport(thread=models.thread_info(thread_id, await self.store.thread(thread_id)),
                            comments=[ExportedComment.model_validate(c, from_attributes=True) for c in comments])

    async def import_thread(self, thread_id: str, comments: list[ExportedComment], actor: str | None = None
                            ) -> Imported:
        # An export of this very thread holds its own comments: they are here already, whatever their status.
        here = await self.store.in_thread(thread_id, [c.id for c in comments])
        new = [replace(c, imported_by=actor)
               for c in domain.imported(thread_id, [c for c in comments if c.id not in here], self.config.max_depth,
                                        self.store.imported_id)]
        await self.store.ensure_thread(thread_id)
        count = sum(c is not None for c in await self.store.insert_many([(c, []) for c in new]))
        self.changed(thread_id)
        return Imported(imported=count, skipped=len(comments) - count)
