"""Request and response models of the comments API (also the source of its OpenAPI document), and how a stored
comment is shown."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared import addresses
from shared.fields import SPACE, Flag, Moment, filled
from shared.messages.comments import CommentStatus
from shared.messages.common import Language

from .domain import Action, Moderation, Sort, Thread, ThreadEntry, text

# ---- input ------------------------------------------------------------------------------------------------------

NAME_MAX, BODY_MIN, BODY_MAX, THREAD_MAX = 80, 2, 5000, 200


def _one_space(value: str) -> str:
    return re.sub(f"[{SPACE}]+", " ", value)


# Lower-cased as well: an author's comments are found (and erased) by the address, however it was typed.
Email = Annotated[addresses.Email, AfterValidator(str.lower)]
Name = Annotated[filled(NAME_MAX, error=("name_blank", "Skriv namnet ditt.")), AfterValidator(_one_space)]
BODY_SHORT = ("body_short", "Skriv ein kommentar på minst {min} teikn.")
Body = filled(BODY_MAX, BODY_MIN, BODY_SHORT)
ThreadId = Annotated[str, Field(min_length=1, max_length=THREAD_MAX)]
# What next_cursor gave: base64url of a short JSON list (a longer one is none of ours).
Cursor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$",
                              description="next_cursor of the previous page")]


class NewComment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    author_name: Name
    email: Email = Field(description="Never shown publicly")
    body: Body = Field(description="A safe subset of Markdown")
    parent_id: str | None = None
    notify_replies: Flag = Field(default=False, description="Mail me when someone replies")
    language: Language = Language.nn
    website: str = Field(default="", max_length=500, description="Honeypot: leave empty (hidden in the form)")


class CommentEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Body


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sort: Sort = Sort.newest
    cursor: Cursor | None = None
    limit: int | None = Field(default=None, ge=1, le=100)


class BulkModeration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Action


class ThreadChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    closed: Flag | None = None
    hidden: Flag | None = None
    moderation: Moderation | None = None


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    language: Language = Language.nn


class SignedToken(BaseModel):
    """The token from a signed link (erasure, unsubscribe)."""

    model_config = ConfigDict(extra="forbid")
    token: str


class CountsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: list[ThreadId] = Field(min_length=1, max_length=500)


# ---- public view ------------------------------------------------------------------------------------------------


class PublicComment(BaseModel):
    id: str
    parent_id: str | None
    author_name: str
    html: str
    created_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False
    reply_count: int = Field(default=0, description="Approved replies under a top-level comment (0 on replies)")
    hidden_replies: int = Field(default=0, description="Replies not shown here (beyond the nesting limit)")
    replies: list["PublicComment"] = Field(default_factory=list)


class ThreadInfo(BaseModel):
    id: str
    closed: bool = False
    hidden: bool = False
    moderation: Moderation = "pre"


def thread_info(thread_id: str, thread: Thread | None) -> ThreadInfo:
    if thread is None:
        return ThreadInfo(id=thread_id)
    return ThreadInfo(id=thread_id, closed=thread.closed, hidden=thread.hidden, moderation=thread.moderation)


class Page(BaseModel):
    thread: ThreadInfo
    comments: list[PublicComment]
    next_cursor: str | None = None


def public(entry: ThreadEntry, language: Language) -> PublicComment:
    deleted = entry.status == CommentStatus.deleted
    return PublicComment(
        id=entry.id, parent_id=entry.parent_id, author_name="" if deleted else entry.author_name,
        html=f"<p>{text('deleted', language)}</p>" if deleted else entry.html,
        created_at=entry.created_at, edited_at=entry.edited_at, deleted=deleted, reply_count=entry.reply_count)


def nest(roots: list[ThreadEntry], descendants: list[ThreadEntry], nested_limit: int, language: Language
         ) -> list[PublicComment]:
    """Hang the listed descendants (oldest first) under their parents, showing up to nested_limit per comment."""
    children: dict[str | None, list[ThreadEntry]] = {}
    for entry in sorted(descendants, key=lambda e: e.id):  # ids sort in creation order
        children.setdefault(entry.parent_id, []).append(entry)

    def build(entry: ThreadEntry) -> PublicComment:
        view = public(entry, language)
        below = children.get(entry.id, [])
        view.replies = [build(child) for child in below[:nested_limit]]
        view.hidden_replies = max(0, len(below) - nested_limit)
        return view

    return [build(root) for root in roots]


# ---- export and import ------------------------------------------------------------------------------------------


_BODY = TypeAdapter(Body)
_BODY_UNLESS_DELETED = {"if": {"properties": {"status": {"const": CommentStatus.deleted.value}}},
                        "else": {"properties": {"body": _BODY.json_schema()}}}


class ExportedComment(BaseModel):
    """A comment as moderators export it: the source, not the rendering (re-rendered on import); no IP. The
    text is empty on a deleted comment only (a placeholder)."""

    model_config = ConfigDict(json_schema_extra=_BODY_UNLESS_DELETED)
    id: str = Field(min_length=1, max_length=100)
    reply_to: str | None = Field(default=None, max_length=100,
                                 description="The comment this one answered (an id in the export)")
    author_name: Name
    email: Email | None = None
    status: CommentStatus
    body: str = Field(max_length=BODY_MAX)
    created_at: Moment
    edited_at: Moment | None = None
    notify_replies: Flag = False
    language: Language = Language.nn

    @field_validator("body")
    @classmethod
    def body_unless_deleted(cls, body: str, info: ValidationInfo) -> str:
        return body if info.data.get("status") == CommentStatus.deleted else _BODY.validate_python(body)


class ThreadImport(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an export file posts as it is
    comments: list[ExportedComment] = Field(max_length=50_000)

    @field_validator("comments")
    @classmethod
    def one_comment_per_id(cls, comments: list[ExportedComment]) -> list[ExportedComment]:
        # Replies find their parent by id: two comments with one id would leave one of them out.
        if len({c.id for c in comments}) < len(comments):
            raise PydanticCustomError("duplicate_id", "To kommentarar har same id.")
        return comments


class ThreadExport(ThreadImport):
    thread: ThreadInfo


# ---- answers ----------------------------------------------------------------------------------------------------


class Created(BaseModel):
    id: str
    status: CommentStatus = Field(description="pending until a moderator approves (in pre-moderation)")
    html: str
    message: str
    edit_token: str = Field(description="Send as X-Edit-Token to edit or delete within the edit window")
    edit_until: datetime


class Counts(BaseModel):
    counts: dict[str, int] = Field(description="Approved comments per thread id")


class Edited(BaseModel):
    id: str
    status: CommentStatus
    html: str


class Message(BaseModel):
    message: str


class ErasurePreview(BaseModel):
    comments: int
    message: str


class Erased(BaseModel):
    anonymised: int
    message: str


class QueuedComment(BaseModel):
    id: str
    thread_id: str
    parent_id: str | None
    author_name: str
    email: str | None = Field(default=None, description="For moderators only (none once erased)")
    body: str
    html: str
    status: CommentStatus
    created_at: datetime
    moderated_by: str | None = Field(default=None, description="The moderator who decided its status last")


class Queue(BaseModel):
    comments: list[QueuedComment]
    next_cursor: str | None = None


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: CommentStatus = CommentStatus.pending
    cursor: Cursor | None = None
    limit: int = Field(default=50, ge=1, le=200)


class Moderated(BaseModel):
    results: dict[str, str] = Field(description="Per id: the new status, 'unchanged' or 'not_found'")


class Imported(BaseModel):
    imported: int
    skipped: int = Field(
        description="Comments already in the thread: imported before, exported from it, or their text is")
