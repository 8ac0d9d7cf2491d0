"""Messages published by the notifications service (routing keys notification.*)."""

import re
from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, EmailStr, Field, field_validator

from .envelope import Payload, personal

ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


class NotificationKindV1(StrEnum):
    """What the mail was about: only the kinds notification.*.v1 was first published with (then as a closed
    enumeration), so v1 never carries another; a mail of a later kind is published in v2 only. Count one you do not
    know as "other"."""

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


class NotificationKind(StrEnum):
    """What the mail was about. Open: new kinds of mail are added within v2; count one you do not know as
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


class Sent(NotificationOutcome):
    sent_at: AwareDatetime


class Failed(NotificationOutcome):
    failed_at: AwareDatetime
    error: str = Field(description="What the SMTP server answered, with any email address in it replaced by "
                                   "<address> (the recipient is in `recipient`, marked as personal data)")

    @field_validator("error")
    @classmethod
    def _without_addresses(cls, error: str) -> str:
        # Servers quote the address they refused ("550 5.1.1 <kari@example.no>: unknown user"): this free text is
        # not marked as personal data, so it must not carry any.
        return ADDRESS.sub("<address>", error)


# v1 was first published with a closed NotificationKind, so a kind of mail added since (staff_sign_in) breaks its
# readers: v2 carries every kind, open, and v1 goes out beside it for the kinds it knows until the overlap ends.
class NotificationSentV1(Sent):
    event_type = "notification.sent.v1"
    summary = "A mail of one of the kinds v1 knows was accepted by the SMTP server."
    kind: NotificationKindV1


class NotificationSent(Sent):
    event_type = "notification.sent.v2"
    summary = "A mail of any kind was accepted by the SMTP server."
    replaces = NotificationSentV1
    replaces_until = date(2027, 6, 30)


class NotificationFailedV1(Failed):
    event_type = "notification.failed.v1"
    summary = ("A mail of one of the kinds v1 knows could not be delivered and will not be retried (SMTP 5xx, bad "
               "address).")
    kind: NotificationKindV1


class NotificationFailed(Failed):
    event_type = "notification.failed.v2"
    summary = "A mail of any kind could not be delivered and will not be retried (SMTP 5xx, bad address)."
    replaces = NotificationFailedV1
    replaces_until = date(2027, 6, 30)
