"""Comment rules without I/O: user-facing text, safe rendering, spam signals, status decisions, moderation
transitions, nesting, import, cursors and signed tokens."""

import base64
import binascii
import hashlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

import jwt
import nh3
from markdown_it import MarkdownIt

from shared.messages.comments import CommentStatus
from shared.messages.common import Language

# ---- user-facing text -------------------------------------------------------------------------------------------

TEXT: dict[str, dict[Language, str]] = {
    "deleted": {Language.nn: "Kommentaren er sletta.", Language.nb: "Kommentaren er slettet.",
                Language.en: "The comment was deleted."},
    "anonymous": {Language.nn: "Anonym", Language.nb: "Anonym", Language.en: "Anonym"},
    "closed": {Language.nn: "Tråden er stengd for nye kommentarar.",
               Language.nb: "Tråden er stengt for nye kommentarer.",
               Language.en: "This thread is closed for new comments."},
    "duplicate": {Language.nn: "Du har alt skrive akkurat denne kommentaren her.",
                  Language.nb: "Du har allerede skrevet akkurat denne kommentaren her.",
                  Language.en: "This exact comment was already posted here."},
    "rate": {Language.nn: "Du skriv for mange kommentarar. Vent litt og prøv igjen.",
             Language.nb: "Du skriver for mange kommentarer. Vent litt og prøv igjen.",
             Language.en: "Too many comments. Please wait a moment and try again."},
    "thanks_approved": {Language.nn: "Takk for kommentaren!", Language.nb: "Takk for kommentaren!",
                        Language.en: "Thank you for your comment!"},
    "thanks_pending": {Language.nn: "Takk! Kommentaren blir synleg når ein moderator har godkjent han.",
                       Language.nb: "Takk! Kommentaren blir synlig når en moderator har godkjent den.",
                       Language.en: "Thank you! Your comment will appear once a moderator approves it."},
    "unsubscribed": {Language.nn: "Du får ikkje lenger e-post om svar på denne kommentaren.",
                     Language.nb: "Du får ikke lenger e-post om svar på denne kommentaren.",
                     Language.en: "You will no longer get mail about replies to this comment."},
    "not_found": {Language.nn: "Fann ikkje kommentaren.", Language.nb: "Fant ikke kommentaren.",
                  Language.en: "Comment not found."},
    "parent_not_found": {Language.nn: "Kommentaren du svarar på finst ikkje i denne tråden.",
                         Language.nb: "Kommentaren du svarer på finnes ikke i denne tråden.",
                         Language.en: "The comment you reply to is not in this thread."},
    "token": {Language.nn: "Lenkja er ugyldig eller har gått ut.", Language.nb: "Lenken er ugyldig eller utløpt.",
              Language.en: "The link is invalid or has expired."},
    "cursor": {Language.nn: "Ugyldig sidepeikar (cursor).", Language.nb: "Ugyldig sidepeker (cursor).",
               Language.en: "Invalid page cursor."},
    "erasure_requested": {
        Language.nn: "Har vi kommentarar frå denne adressa, får du ein e-post med ei lenkje for å anonymisere dei.",
        Language.nb: "Har vi kommentarer fra denne adressen, får du en e-post med en lenke for å anonymisere dem.",
        Language.en: "If we hold comments from this address, you will get an email with a link to anonymise them."},
    "erasure_preview": {
        Language.nn: "Send lenkja med POST for å anonymisere kommentarane: namnet blir «Anonym», "
                     "e-post og IP blir sletta.",
        Language.nb: "Send lenken med POST for å anonymisere kommentarene: navnet blir «Anonym», e-post og IP slettes.",
        Language.en: "POST the token to anonymise the comments: the name becomes «Anonym», email and IP are deleted."},
    "erased": {Language.nn: "Kommentarane dine er anonymiserte.", Language.nb: "Kommentarene dine er anonymisert.",
               Language.en: "Your comments are anonymised."},
    "gone": {Language.nn: "Kommentaren kan ikkje lenger endrast.", Language.nb: "Kommentaren kan ikke lenger endres.",
             Language.en: "The comment can no longer be changed."},
}


def text(key: str, language: Language = Language.nn) -> str:
    return TEXT[key][language]


@lru_cache(maxsize=1024)  # on every request, and browsers send few distinct headers
def language_of(accept_language: str | None) -> Language:
    """The first of nn/nb/en named in an Accept-Language header; nn when none is."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        for language in Language:
            if tag == language or tag.startswith(f"{language}-"):
                return language
        if tag in ("no", "no-no"):
            return Language.nb
    return Language.nn


# ---- sorts and actions ------------------------------------------------------------------------------------------


class Sort(StrEnum):
    newest = "newest"
    oldest = "oldest"
    most_replied = "most_replied"


class Action(StrEnum):
    approve = "approve"
    reject = "reject"
    spam = "spam"
    delete = "delete"


# ---- what the store keeps ---------------------------------------------------------------------------------------

Moderation = Literal["pre", "post"]


@dataclass(kw_only=True, slots=True)
class ThreadEntry:
    """A comment as a thread's page shows it (all a page reads: no address, IP or source). Ids are strings that
    sort in creation order (the store makes them so)."""

    id: str
    parent_id: str | None = None  # the comment it sits under (see placement)
    root_id: str | None = None  # the top-level comment above it
    depth: int
    author_name: str
    html: str
    status: CommentStatus
    reply_count: int = 0  # approved replies under a top-level comment
    created_at: datetime
    edited_at: datetime | None = None


@dataclass(kw_only=True, slots=True)
class Comment(ThreadEntry):
    """A comment with all the store keeps of it. `outbox`: the messages its writes caused and that are not yet
    published (shared.outbox entries; a read leaves them out, a write's answer has them)."""

    thread_id: str
    reply_to: str | None = None  # the comment it answered (its parent, unless that was at the deepest level)
    email: str | None = None  # none once erased (or imported without one)
    ip: str | None = None  # kept for abuse cases, for COMMENTS_IP_RETENTION_DAYS
    language: Language = Language.nn
    notify_replies: bool = False
    body: str  # the source: Markdown
    listed: bool  # shown in its thread (see listed)
    fingerprint: str | None = None  # of the text, while it keeps others from posting the same
    moderated_at: datetime | None = None
    moderated_by: str | None = None
    deleted_by: str | None = None
    erased: bool = False
    imported_by: str | None = None
    outbox: list[dict] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class Thread:
    """A thread's settings; a thread no one changed has these defaults."""

    id: str
    closed: bool = False
    hidden: bool = False
    moderation: Moderation = "pre"
    created_at: datetime | None = None
    updated_by: str | None = None


@dataclass(kw_only=True, slots=True)
class ErasureRequest:
    """A request for an erasure link, kept only long enough to publish the message that mails it."""

    id: str
    created_at: datetime
    outbox: list[dict]


# ---- rendering --------------------------------------------------------------------------------------------------

# CommonMark with raw HTML off; images, headings and rules are not part of a comment's vocabulary.
_markdown = MarkdownIt("commonmark", {"html": False}).disable(["image", "heading", "lheading", "hr"])
ALLOWED_TAGS = {"p", "br", "em", "strong", "a", "ul", "ol", "li", "blockquote", "code", "pre"}
# Sanitisers built once: nh3.clean would build its allowlists again on every call (half its cost here).
_sanitiser = nh3.Cleaner(tags=ALLOWED_TAGS, attributes={"a": {"href"}, "ol": {"start"}},
                         url_schemes={"http", "https", "mailto"}, link_rel="nofollow ugc")
_tag_stripper = nh3.Cleaner(tags=set())


def render(body: str) -> str:
    """Markdown to HTML, then an allowlist sanitiser as the second line of defence."""
    return _sanitiser.clean(_markdown.render(body))


def excerpt(rendered: str, length: int = 200) -> str:
    plain = " ".join(html.unescape(_tag_stripper.clean(rendered)).split())
    if len(plain) <= length:
        return plain
    return plain[:length].rsplit(" ", 1)[0] + " …"


_LINK = re.compile(r"https?://|www\.|mailto:", re.IGNORECASE)


def count_links(body: str) -> int:
    return len(_LINK.findall(body))


def fingerprint(body: str) -> str:
    """The same text twice in a thread is refused, whatever its case or spacing."""
    return hashlib.sha256(" ".join(body.lower().split()).encode()).hexdigest()


# ---- status -----------------------------------------------------------------------------------------------------


def initial_status(*, moderation: str, links: int, max_links: int, honeypot: bool, known_author: bool,
                   auto_approve_known: bool) -> tuple[CommentStatus, str | None]:
    """The status of a new comment and, when it is held, why."""
    if honeypot:
        return CommentStatus.spam, None
    if links > max_links:
        return CommentStatus.pending, "too_many_links"
    if moderation == "post" or (auto_approve_known and known_author):
        return CommentStatus.approved, None
    return CommentStatus.pending, "pre_moderation"


def status_after_edit(status: CommentStatus, *, moderation: str, links: int, max_links: int,
                      auto_approve_known: bool) -> tuple[CommentStatus, str | None]:
    """A published comment, once edited, is vetted like a new one from an author with an approved comment (so
    pre-moderation holds it again); a pending one simply stays in the queue."""
    if status != CommentStatus.approved:
        return status, None
    return initial_status(moderation=moderation, links=links, max_links=max_links, honeypot=False,
                          known_author=True, auto_approve_known=auto_approve_known)


TRANSITIONS: dict[Action, tuple[CommentStatus, set[CommentStatus]]] = {
    Action.approve: (CommentStatus.approved, {CommentStatus.pending, CommentStatus.rejected, CommentStatus.spam}),
    Action.reject: (CommentStatus.rejected, {CommentStatus.pending, CommentStatus.approved}),
    Action.spam: (CommentStatus.spam, {CommentStatus.pending, CommentStatus.approved, CommentStatus.rejected}),
    Action.delete: (CommentStatus.deleted, {CommentStatus.pending, CommentStatus.approved, CommentStatus.rejected,
                                            CommentStatus.spam}),
}


def listed(status: CommentStatus, has_replies: bool) -> bool:
    """Shown in a thread: approved comments, and deleted ones kept as placeholders above their replies."""
    return status == CommentStatus.approved or (status == CommentStatus.deleted and has_replies)


def placement(parent: Comment | None, max_depth: int) -> dict:
    """Where a reply sits: under its parent, or beside it when the parent is already at the deepest level."""
    if parent is None:
        return {"parent_id": None, "root_id": None, "depth": 0}
    if parent.depth < max_depth:
        return {"parent_id": parent.id, "root_id": parent.root_id or parent.id, "depth": parent.depth + 1}
    return {"parent_id": parent.parent_id, "root_id": parent.root_id, "depth": parent.depth}


def new_comment(thread_id: str, new, *, id: str, parent: Comment | None, max_depth: int, status: CommentStatus,
                ip: str | None, now: datetime, fingerprinted: bool = True) -> Comment:
    """A new comment: source and rendering, its place in the thread, and who wrote it (never public). `new` has a
    new comment's fields (models.NewComment or an ExportedComment); `id` is a fresh one from the store."""
    comment = Comment(
        id=id, thread_id=thread_id, **placement(parent, max_depth), reply_to=parent.id if parent else None,
        author_name=new.author_name, email=new.email, ip=ip, language=new.language,
        notify_replies=new.notify_replies, body=new.body, html=render(new.body), status=status,
        listed=listed(status, False), created_at=now,
        # The same text twice in a thread is refused (Comments.post says when a comment takes no fingerprint).
        fingerprint=fingerprint(new.body) if fingerprinted else None)
    return replace(comment, **deleted_fields()) if status == CommentStatus.deleted else comment


def anonymised() -> dict:
    """What erasure changes on a person's comments (name → Anonym, email and IP gone); the text and the thread
    structure stay."""
    return {"author_name": TEXT["anonymous"][Language.nn], "notify_replies": False, "erased": True, "email": None,
            "ip": None}


def deleted_fields() -> dict:
    """What deleting a comment changes: its text goes, and gives its fingerprint back (it may be written again)."""
    return {"body": "", "html": "", "notify_replies": False, "fingerprint": None}


# ---- import -----------------------------------------------------------------------------------------------------


def imported(thread_id: str, items: list, max_depth: int, imported_id: Callable[[str, str, datetime], str]
             ) -> list[Comment]:
    """Exported comments as new comments of a thread: ids of this thread dated to their creation (`imported_id`:
    the store's, the same for the same exported comment, so a second import of it is refused), the reply
    structure rebuilt (to this service's depth), counts and placeholders derived. A reply whose parent is not in
    the import becomes a top-level comment."""
    comments: dict[str, Comment] = {}
    for item in sorted(items, key=lambda i: i.created_at):  # exported comments (models.ExportedComment)
        comment = new_comment(thread_id, item, id=imported_id(thread_id, item.id, item.created_at),
                              parent=comments.get(item.reply_to or ""), max_depth=max_depth, status=item.status,
                              ip=None, now=item.created_at,
                              fingerprinted=item.status not in (CommentStatus.deleted, CommentStatus.spam))
        comments[item.id] = replace(comment, edited_at=item.edited_at)
    by_id = {c.id: c for c in comments.values()}
    for comment in comments.values():
        if comment.root_id and comment.status == CommentStatus.approved:
            by_id[comment.root_id].reply_count += 1
        if comment.parent_id and comment.status in (CommentStatus.approved, CommentStatus.pending):
            parent = by_id[comment.parent_id]
            parent.listed = listed(parent.status, True)
    return list(comments.values())


# ---- cursors ----------------------------------------------------------------------------------------------------

# Each sort is a list of (field of a ThreadEntry, direction) ending in the id, unique and in creation order (the
# store's ids are 24 hex digits).
SORT_KEYS: dict[Sort, list[tuple[str, int]]] = {
    Sort.newest: [("id", -1)], Sort.oldest: [("id", 1)], Sort.most_replied: [("reply_count", -1), ("id", -1)]}
_ID = re.compile(r"^[0-9a-f]{24}$")


class BadCursor(ValueError):
    pass


def encode_cursor(sort: Sort, last: ThreadEntry) -> str:
    raw = [sort.value, *(getattr(last, field) for field, _ in SORT_KEYS[sort])]
    return base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(sort: Sort, cursor: str) -> list:
    """The sort values after which the next page starts."""
    try:
        kind, *values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
        raise BadCursor(str(exc)) from exc
    keys = [key for key, _ in SORT_KEYS[sort]]
    if kind != sort.value or len(values) != len(keys):
        raise BadCursor("cursor from another sort order")
    for key, value in zip(keys, values):
        # A count fits the store's 64-bit integers (a larger one cannot even be sent in a query).
        valid = (_ID.match(value) if key == "id" and isinstance(value, str)
                 else type(value) is int and 0 <= value < 2**63)
        if not valid:
            raise BadCursor(f"bad {key}")
    return values


# ---- signed tokens ----------------------------------------------------------------------------------------------


class Purpose(StrEnum):
    edit = "edit"  # subject: the comment id
    unsubscribe = "unsubscribe"  # subject: the comment id
    erase = "erase"  # subject: the email address


ERASE_LINK_TTL = timedelta(hours=24)


class BadToken(ValueError):
    pass


def sign(key: bytes, purpose: Purpose, subject: str, ttl: timedelta | None = None,
         now: datetime | None = None) -> str:
    claims: dict[str, Any] = {"sub": subject, "purpose": purpose.value}
    if ttl is not None:
        claims["exp"] = (now or datetime.now(UTC)) + ttl
    return jwt.encode(claims, key, algorithm="HS256")


def verify(key: bytes, purpose: Purpose, token: str | None, subject: str | None = None) -> str:
    """The token's subject, if the token is ours, unexpired, for this purpose (and this subject, when given)."""
    try:
        claims = jwt.decode(token or "", key, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise BadToken(str(exc)) from exc
    if claims.get("purpose") != purpose.value or not claims.get("sub") or subject not in (None, claims["sub"]):
        raise BadToken("token for something else")
    return claims["sub"]
