"""In-memory stand-ins for the comments service's store and rate limits (cosmicpython's FakeRepository), so that
its use cases (services/comments/service.py) run in milliseconds without MongoDB or RabbitMQ; the outbox is
tests/support/fake_outbox.py.

The fake keeps the promises services/comments/store.py makes in its docstrings, over the same typed documents
(domain.Comment, Thread, ErasureRequest). The real store is held to MongoDB by tests/store and the integration
tests; nothing checks this fake against it, so it stays as plain as the promises."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.comments import domain, store
from services.comments.domain import Comment, ErasureRequest, Sort, Thread, ThreadEntry
from services.comments.store import Duplicate
from shared import outbox
from shared.http import ApiError
from shared.messages import CloudEvent
from shared.messages.comments import CommentStatus


def _read(comment: Comment) -> Comment:
    """What a read returns: a copy without the outbox."""
    return replace(comment, outbox=[])


def _written(comment: Comment) -> Comment:
    """What a write answers: a copy with the outbox it holds."""
    return replace(comment, outbox=list(comment.outbox))


def _after(entry: ThreadEntry, sort: Sort, values: list | None) -> bool:
    """Strictly after the cursor's values in the sort's lexicographic order."""
    if values is None:
        return True
    for (field, direction), value in zip(domain.SORT_KEYS[sort], values):
        mine = getattr(entry, field)
        if mine != value:
            return mine > value if direction > 0 else mine < value
    return False


def _sorted(entries: list, sort: Sort) -> list:
    for field, direction in reversed(domain.SORT_KEYS[sort]):  # stable sorts, the last key first
        entries = sorted(entries, key=lambda e: getattr(e, field), reverse=direction < 0)
    return entries


class FakeStore:
    new_id = staticmethod(store.new_id)
    imported_id = staticmethod(store.imported_id)

    def __init__(self):
        self.comments: dict[str, Comment] = {}
        self.threads: dict[str, Thread] = {}
        self.erasure_requests: dict[str, ErasureRequest] = {}

    def outgoing(self, doc: Comment | ErasureRequest) -> tuple[str, str, list[dict]]:
        # The outbox is told a collection; here its name stands for it.
        return ("erasure_requests" if isinstance(doc, ErasureRequest) else "comments"), doc.id, doc.outbox

    # Threads

    async def thread(self, thread_id: str) -> Thread | None:
        return self.threads.get(thread_id)

    async def change_thread(self, thread_id: str, changes: dict) -> Thread:
        await self.ensure_thread(thread_id)
        self.threads[thread_id] = replace(self.threads[thread_id], **changes)
        return self.threads[thread_id]

    async def ensure_thread(self, thread_id: str) -> None:
        self.threads.setdefault(thread_id, Thread(id=thread_id, created_at=datetime.now(UTC)))

    # Comments

    def _text_taken(self, thread_id: str, fingerprint: str | None, other_than: str | None = None) -> bool:
        return fingerprint is not None and any(  # the unique index on (thread_id, fingerprint), where there is one
            c.thread_id == thread_id and c.fingerprint == fingerprint and c.id != other_than
            for c in self.comments.values())

    async def insert_many(self, batch: list[tuple[Comment, list[CloudEvent]]]) -> list[Comment | None]:
        stored: list[Comment | None] = []
        for comment, events in batch:
            if comment.id in self.comments or self._text_taken(comment.thread_id, comment.fingerprint):
                stored.append(None)
                continue
            self.comments[comment.id] = replace(comment, outbox=[outbox.entry(e) for e in events])
            stored.append(_written(self.comments[comment.id]))
        return stored

    async def in_thread(self, thread_id: str, comment_ids: list[str]) -> set[str]:
        return {i for i in comment_ids if i in self.comments and self.comments[i].thread_id == thread_id}

    async def get(self, comment_id: str) -> Comment | None:
        found = self.comments.get(comment_id)
        return None if found is None else _read(found)

    async def known_author(self, email: str) -> bool:
        return any(c.email == email and c.status == CommentStatus.approved for c in self.comments.values())

    async def update(self, comment_id: str, changes: dict, events: list[CloudEvent],
                     if_status: CommentStatus | None = None) -> Comment | None:
        current = self.comments.get(comment_id)
        if current is None or (if_status is not None and current.status != if_status):
            return None
        if changes.get("fingerprint") and self._text_taken(current.thread_id, changes["fingerprint"], comment_id):
            raise Duplicate()
        self.comments[comment_id] = replace(current, **changes,
                                            outbox=current.outbox + [outbox.entry(e) for e in events])
        return _written(self.comments[comment_id])

    async def count_replies(self, comment_id: str, delta: int) -> None:
        root = self.comments[comment_id]
        self.comments[comment_id] = replace(root, reply_count=root.reply_count + delta)

    async def has_replies(self, comment: Comment) -> bool:
        return any(c.parent_id == comment.id and c.status in (CommentStatus.approved, CommentStatus.pending)
                   for c in self.comments.values())

    async def forget_ips(self, written_before: datetime) -> int:
        old = [c for c in self.comments.values() if c.created_at < written_before and c.ip is not None]
        for comment in old:
            self.comments[comment.id] = replace(comment, ip=None)
        return len(old)

    async def page(self, thread_id: str, sort: Sort, cursor: list | None, limit: int) -> list[ThreadEntry]:
        return [_read(c) for c in _sorted([c for c in self.comments.values() if c.thread_id == thread_id
                                           and c.depth == 0 and c.listed and _after(c, sort, cursor)], sort)[:limit]]

    async def descendants(self, root_ids: list[str]) -> list[ThreadEntry]:
        return [_read(c) for c in self.comments.values() if c.root_id in root_ids and c.listed]

    async def counts(self, thread_ids: list[str]) -> dict[str, int]:
        found = Counter(c.thread_id for c in self.comments.values()
                        if c.thread_id in thread_ids and c.status == CommentStatus.approved)
        return dict(found)

    async def hidden_threads(self, thread_ids: list[str]) -> set[str]:
        return {t for t in thread_ids if t in self.threads and self.threads[t].hidden}

    async def queue(self, status: CommentStatus, cursor: list | None, limit: int) -> list[Comment]:
        return [_read(c) for c in _sorted([c for c in self.comments.values()
                                           if c.status == status and _after(c, Sort.oldest, cursor)],
                                          Sort.oldest)[:limit]]

    async def thread_comments(self, thread_id: str) -> list[Comment]:
        return [_read(c) for c in _sorted([c for c in self.comments.values() if c.thread_id == thread_id],
                                          Sort.oldest)]

    async def count_by_email(self, email: str) -> int:
        return sum(c.email == email for c in self.comments.values())

    async def request_erasure(self, event: CloudEvent) -> ErasureRequest:
        request = ErasureRequest(id=event.id, created_at=datetime.now(UTC), outbox=[outbox.entry(event)])
        self.erasure_requests[request.id] = request
        return request

    async def erase(self, email: str, changes: dict) -> int:
        theirs = [c for c in self.comments.values() if c.email == email]
        for comment in theirs:
            self.comments[comment.id] = replace(comment, **changes)
        return len(theirs)


class FakeRateLimits:
    """Counts hits per key in windows that do not end within a test."""

    def __init__(self):
        self.hits: Counter[str] = Counter()

    async def enforce(self, key: str, allowed: int, window: timedelta, message: str) -> None:
        self.hits[key] += 1
        if self.hits[key] > allowed:
            raise ApiError(429, message, headers={"Retry-After": str(int(window.total_seconds()))})
