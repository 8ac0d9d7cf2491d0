"""Messages published by the notifications service (routing keys notification.*)."""

from enum import StrEnum

from pydantic import AwareDatetime, Field

from .envelope import Payload, personal


class NotificationKind(StrEnum):
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


class NotificationOutcome(Payload):
    notification_id: str
    message_id: str = Field(description="Id of the message that caused the notification")
    kind: NotificationKind
    recipient: personal(str, "The address the mail went (or should have gone) to")
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
    error: str
