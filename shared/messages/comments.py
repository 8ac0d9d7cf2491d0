"""Messages published by the comments service (routing keys comment.*).

Public fields carry no email and no IP. Where a mail must go to someone, the message carries only that
recipient's address, in a field marked as personal data."""

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from .common import Language
from .envelope import SECRET_LINK, URI, Payload, personal
from .staff import SignInLink


class CommentStatus(StrEnum):
    """Where a comment stands. Open: a later producer may add statuses; show a comment only when it is approved."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    spam = "spam"
    deleted = "deleted"


class ParentComment(BaseModel):
    """The comment a reply answers. Its author's address is present only if they opted in to reply mails."""

    model_config = ConfigDict(frozen=True)
    comment_id: str
    author_name: personal(str, "Display name of the parent comment's author (shown publicly with the comment)")
    language: Language = Language.nn
    email: personal(EmailStr | None, "Where to mail the reply notice; only set when its author opted in") = None
    unsubscribe_url: personal(str | None, SECRET_LINK + " (turns reply mails off for that comment)", **URI) = None


class CommentPayload(Payload):
    thread_id: str = Field(description="Opaque thread id: a page path or an event slug")
    comment_id: str
    author_name: personal(str, "Display name, shown publicly with the comment")
    language: Language = Language.nn
    excerpt: str = Field(description="The start of the comment as plain text (no markup)")
    url: str = Field(description="Public link to the comment on its page", json_schema_extra=URI)
    status: CommentStatus
    parent: ParentComment | None = None


class CommentSubmitted(CommentPayload):
    event_type = "comment.submitted.v1"
    summary = "A comment waits for moderation: tell the moderators."
    moderation_url: str = Field(description="Link to the moderation queue", json_schema_extra=URI)
    held_because: Literal["pre_moderation", "too_many_links"] = Field(
        "pre_moderation", description="Why it waits. Open: treat a reason you do not know as pre-moderation.")
    moderator_emails: list[personal(EmailStr, "A moderator to tell")] = Field(default_factory=list)


class CommentPublished(CommentPayload):
    event_type = "comment.published.v1"
    summary = "A comment is visible. If it replies to an author who opted in, parent.email says whom to tell."


class CommentRejected(CommentPayload):
    event_type = "comment.rejected.v1"
    summary = "A moderator rejected a comment or marked it as spam."


class CommentDeleted(Payload):
    event_type = "comment.deleted.v1"
    summary = ("A comment was deleted (by its author, a moderator, or an erasure); a placeholder stays if it has "
               "replies.")
    thread_id: str
    comment_id: str
    by: Literal["author", "moderator", "erasure"] = Field(
        description="Who deleted it. Open: a deletion is a deletion whoever did it.")
    placeholder: bool = Field(description="True when the comment stays as 'Kommentaren er sletta' above its replies")


class CommentErasureRequested(Payload):
    event_type = "comment.erasure_requested.v1"
    summary = ("Someone asked to erase the comments written with an email address: mail that address the signed "
               "link (only published when the address has comments).")
    email: personal(EmailStr, "Whom to mail the link: the address whose comments the link erases")
    language: Language = Language.nn
    comment_count: int = Field(ge=1)
    erase_url: personal(str, SECRET_LINK, **URI)
    expires_at: AwareDatetime


class ModeratorSignInRequested(SignInLink):
    event_type = "comment.sign_in_requested.v1"
    summary = "A moderator or admin asked to sign in to the moderation page: mail them the single-use link."
