"""Messages published by the notifications service (routing keys notification.*)."""

import re
from enum import StrEnum

from pydantic import AwareDatetime, EmailStr, Field, field_validator

from .envelope import Payload, personal

ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


class NotificationKind(StrEnum):
    """What the mail was about. Open: new kinds of mail are added within a version; count one you do not know as
    "other"."""

    confirm_email = "confirm_email"
    confirmed = "confirmed"
    waitlisted = "waitlisted"
    promoted = "promoted"
    cancelled = "cancelled"
    guest_invite = "guest_invite"
    event_updated = "event_updated"
    event_cancelled = "event_cancelled"
    reminder = "reminder"
    comment_submitted = "comment_submitted"
    comment_published = "comment_published"
    comment_erasure = "comment_erasure"
    staff_sign_in = "staff_sign_in"


class NotificationOutcome(Payload):
    notification_id: str
    message_id: str = Field(description="Id of the message that caused the notification")
    kind: NotificationKind
    recipient: personal(EmailStr, "The address the mail went (or should have gone) to")
    event_slug: str | None = None
    attempts: int = Field(ge=1)


class NotificationSent(NotificationOutcome):
    event_type = "notification.sent.v1"
    summary = "A mail was accepted by the SMTP server."
    sent_at: AwareDatetime


class NotificationFailed(NotificationOutcome):
    event_type = "notification.failed.v1"
    summary = "A mail could not be delivered and will not be retried (SMTP 5xx, bad address)."
    failed_at: AwareDatetime
    error: str = Field(description="What the SMTP server answered, with any email address in it replaced by "
                                   "<address> (the recipient is in `recipient`, marked as personal data)")

    @field_validator("error")
    @classmethod
    def _without_addresses(cls, error: str) -> str:
        # Servers quote the address they refused ("550 5.1.1 <kari@example.no>: unknown user"): this free text is
        # not marked as personal data, so it must not carry any.
        return ADDRESS.sub("<address>", error)

