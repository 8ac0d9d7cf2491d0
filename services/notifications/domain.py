"""Notification rules, without I/O: which mails a message causes, to whom, in which language, with which
calendar invitation; the records that send each mail once (a claim, its take-over) and the attendees with their
reminders, as the service sees them (the store keeps them its own way); and how a delivery failure is classed."""

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from shared.messages import Language, Payload
from shared.messages.comments import CommentErasureRequested, CommentPublished, CommentSubmitted
from shared.messages.notifications import NotificationKind as Kind
from shared.messages.staff import SignInLink
from shared.messages.registration import (
    EventInfo, GuestInvited, RegistrationCancelled, RegistrationConfirmed, RegistrationPayload, RegistrationPending,
    RegistrationPromoted, RegistrationStatus, RegistrationWaitlisted,
)


class Status(StrEnum):
    sending = "sending"
    retrying = "retrying"  # a transient failure: the message will be delivered again
    sent = "sent"
    failed = "failed"  # permanent: not retried
    unsubscribed = "unsubscribed"


# A record in one of these will never be sent again.
FINAL = {Status.sent, Status.failed, Status.unsubscribed}


def mail_id(message_id: str, recipient: str, kind: Kind) -> str:
    """The same for every attempt at one mail (a message, a recipient, a kind): its Message-ID, by which a
    receiving system can drop a copy that a crash between the server's answer and our record of it sent twice."""
    return hashlib.sha256("\0".join((message_id, recipient, kind.value)).encode()).hexdigest()


class Unsubscribe(StrEnum):
    """Topics a recipient may turn off with one click; transactional mail has none."""
    reminder = "reminder"


@dataclass(frozen=True)
class Unsubscription:
    """A recipient turned a topic off."""
    email: str
    topic: Unsubscribe
    at: datetime


class IcsMethod(StrEnum):
    request = "REQUEST"
    cancel = "CANCEL"


@dataclass(frozen=True)
class Mail:
    """One mail to send: everything the templates need, decided from a message."""
    kind: Kind
    recipient: str
    name: str
    language: Language
    context: dict[str, Any] = field(default_factory=dict)
    event: EventInfo | None = None
    registration_id: str | None = None
    ics: IcsMethod | None = None
    unsubscribe_topic: Unsubscribe | None = None
    # A link the sender of the message gave for turning this kind of mail off (e.g. reply mails per comment).
    unsubscribe_url: str | None = None

    @property
    def event_slug(self) -> str | None:
        return self.event.slug if self.event else None


@dataclass(frozen=True)
class NotificationRecord:
    """One mail — a (message id, recipient, kind) — in the audit trail: the claim that sends it once, and what came
    of it. Each claim counts an attempt, so (id, status, attempts) names the claim holding it."""
    id: str
    message_id: str
    recipient: str
    kind: Kind
    status: Status
    attempts: int
    language: Language
    created_at: datetime
    updated_at: datetime
    event_slug: str | None = None
    registration_id: str | None = None
    lease_until: datetime | None = None  # while a sender holds it (sending)
    sent_at: datetime | None = None
    last_error: str | None = None
    # Taken over from a sender that died holding it, maybe after the server had taken the mail.
    possible_copy: bool = False


def first_claim(record_id: str, message_id: str, mail: Mail, now: datetime, lease: timedelta) -> NotificationRecord:
    """The record of a mail seen for the first time, claimed by the sender that saw it."""
    return NotificationRecord(
        id=record_id, message_id=message_id, recipient=mail.recipient, kind=mail.kind, status=Status.sending,
        attempts=1, language=mail.language, created_at=now, updated_at=now, event_slug=mail.event_slug,
        registration_id=mail.registration_id, lease_until=now + lease)


def is_free(record: NotificationRecord, now: datetime) -> bool:
    """May a sender claim this record? One left retrying, or one whose sender's lease ran out (it died)."""
    return record.status == Status.retrying or (
        record.status == Status.sending and record.lease_until is not None and record.lease_until < now)


def take_over(record: NotificationRecord, now: datetime, lease: timedelta) -> NotificationRecord:
    """A free record claimed again: one more attempt, and a possible copy if its sender died holding it."""
    return replace(record, status=Status.sending, attempts=record.attempts + 1, lease_until=now + lease,
                   updated_at=now, possible_copy=record.possible_copy or record.status == Status.sending)


def lease_left(record: NotificationRecord, now: datetime) -> float:
    """Seconds until a claim held by another sender runs out (0 if it has, or is not held)."""
    if record.status != Status.sending or record.lease_until is None:
        return 0.0
    return max(0.0, (record.lease_until - now).total_seconds())


REGISTRATION_KINDS: dict[type[RegistrationPayload], Kind] = {
    RegistrationPending: Kind.confirm_email,
    RegistrationConfirmed: Kind.confirmed,
    RegistrationWaitlisted: Kind.waitlisted,
    RegistrationPromoted: Kind.promoted,
    RegistrationCancelled: Kind.cancelled,
}
# Mails that carry a calendar invitation, and its method.
INVITES = {Kind.confirmed: IcsMethod.request, Kind.promoted: IcsMethod.request, Kind.cancelled: IcsMethod.cancel,
           Kind.event_cancelled: IcsMethod.cancel}
HOLDS_SEAT = {RegistrationStatus.confirmed, RegistrationStatus.checked_in}
# Who hears that the time or place changed.
KEEPS_INFORMED = HOLDS_SEAT | {RegistrationStatus.waitlisted}


def registration_mail(kind: Kind, data: RegistrationPayload, invite: bool = True, **context) -> Mail:
    return Mail(kind, str(data.email), data.name, data.language, {"manage_url": data.manage_url, **context},
                event=data.event, registration_id=data.registration_id, ics=INVITES.get(kind) if invite else None)


def had_invite(data: RegistrationCancelled) -> bool:
    """Only a seat came with a calendar invitation to withdraw; a message from a producer that does not say what
    the registration was (previous_status None) is taken to have had one, as before it said."""
    return data.previous_status is None or data.previous_status in HOLDS_SEAT


def plan(data: Payload) -> list[Mail]:
    """The mails a message causes by itself (event.updated needs the attendees: see `plan_event_update`)."""
    match data:
        case RegistrationCancelled(reason="left_waiting_list"):
            # No calendar entry to withdraw: a place on the waiting list never had one.
            return [registration_mail(Kind.cancelled, data, invite=False, was_waitlisted=True)]
        case RegistrationCancelled():
            kind = Kind.event_cancelled if data.reason == "event_cancelled" else Kind.cancelled
            return [registration_mail(kind, data, invite=had_invite(data))]
        case RegistrationPending():
            return [registration_mail(Kind.confirm_email, data, confirm_url=data.confirm_url,
                                      expires_at=data.expires_at)]
        case RegistrationWaitlisted():
            return [registration_mail(Kind.waitlisted, data, position=data.position)]
        case RegistrationPayload() if type(data) in REGISTRATION_KINDS:
            return [registration_mail(REGISTRATION_KINDS[type(data)], data)]
        case GuestInvited():
            return [Mail(Kind.guest_invite, str(data.guest_email), "", data.language, event=data.event,
                         context={"inviter_name": data.inviter_name, "municipality": data.municipality,
                                  "invite_url": data.invite_url})]
        case CommentSubmitted():
            return [Mail(Kind.comment_submitted, str(address), "", data.language, context=comment_context(data))
                    for address in dict.fromkeys(data.moderator_emails)]
        case CommentPublished(parent=parent) if parent is not None and parent.email:
            return [Mail(Kind.comment_published, str(parent.email), parent.author_name, parent.language,
                         context=comment_context(data), unsubscribe_url=parent.unsubscribe_url)]
        case CommentErasureRequested():
            return [Mail(Kind.comment_erasure, str(data.email), "", data.language,
                         context={"comment_count": data.comment_count, "erase_url": data.erase_url,
                                  "expires_at": data.expires_at})]
        case SignInLink():
            return [Mail(Kind.staff_sign_in, str(data.email), "", data.language,
                         context={"sign_in_url": data.sign_in_url, "expires_at": data.expires_at})]
    return []


def comment_context(data: CommentSubmitted | CommentPublished) -> dict[str, Any]:
    return {"author_name": data.author_name, "excerpt": data.excerpt, "url": data.url,
            "moderation_url": getattr(data, "moderation_url", None)}


class Reminder(StrEnum):
    """Where an attendee's reminder stands."""
    scheduled = "scheduled"
    sending = "sending"  # taken by a sweep, with a lease
    sent = "sent"
    cancelled = "cancelled"


@dataclass(frozen=True)
class Attendee:
    """What the service remembers of a registration, to tell the person when the møteplass changes, with the
    reminder kept in step with it. A state is as of the time of the message that told it."""
    registration_id: str
    event: EventInfo
    email: str
    name: str
    language: Language
    status: RegistrationStatus
    manage_url: str | None
    as_of: datetime
    # In a new state, None leaves the reminder as it was.
    reminder: Reminder | None = None
    due: datetime | None = None
    lease_until: datetime | None = None  # while a sweep holds it (sending)


def attendee(data: RegistrationPayload, as_of: datetime, hours_before: float, now: datetime) -> Attendee:
    """A registration's new state: a seat schedules its reminder (unless that moment has passed), a cancellation
    cancels it, and any other state leaves it as it was."""
    reminder, due = None, None
    if isinstance(data, RegistrationConfirmed | RegistrationPromoted):
        if due := reminder_due(data.event, hours_before, now):
            reminder = Reminder.scheduled
    elif isinstance(data, RegistrationCancelled):
        reminder = Reminder.cancelled
    return Attendee(registration_id=data.registration_id, event=data.event, email=str(data.email), name=data.name,
                    language=data.language, status=data.status, manage_url=data.manage_url, as_of=as_of,
                    reminder=reminder, due=due)


def plan_event_update(event: EventInfo, attendees: list[Attendee], changed: list[str],
                      previous_starts_at: datetime | None) -> list[Mail]:
    return [Mail(Kind.event_updated, a.email, a.name, a.language, event=event, registration_id=a.registration_id,
                 ics=IcsMethod.request if a.status in HOLDS_SEAT else None,
                 context={"manage_url": a.manage_url, "changed": changed, "previous_starts_at": previous_starts_at})
            for a in attendees if a.status in KEEPS_INFORMED]


def reminder_due(event: EventInfo, hours_before: float, now: datetime) -> datetime | None:
    """When to remind; None when that moment has passed (a late registration needs no reminder)."""
    due = event.starts_at - timedelta(hours=hours_before)
    return due if due > now else None


def reminder_mail(attendee: Attendee) -> Mail:
    return Mail(Kind.reminder, attendee.email, attendee.name, attendee.language, event=attendee.event,
                registration_id=attendee.registration_id, context={"manage_url": attendee.manage_url},
                unsubscribe_topic=Unsubscribe.reminder)


def reminder_message_id(attendee: Attendee) -> str:
    """The reminder's own 'message id': one reminder per registration and version of the møteplass."""
    return f"reminder:{attendee.registration_id}:{attendee.event.sequence}"


# Control characters (CR, LF, NUL, …) never reach a header or a template from user text.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean(text: str) -> str:
    return CONTROL.sub(" ", text).strip()


# Refusals of our own setup, not of the mail (authentication or encryption required, credentials refused): once
# the settings are mended, the parked mails are replayed, so these are retried, never recorded as failed for good.
SETUP_REFUSALS = {530, 534, 535, 538}


def is_permanent(code: int | None) -> bool:
    """SMTP 5xx means the server refuses the mail for good (bad address, rejected content): retrying cannot help."""
    return code is not None and 500 <= code < 600 and code not in SETUP_REFUSALS


def unsubscribe_token(email: str, topic: Unsubscribe, language: Language, key: bytes) -> str:
    """A signed, non-expiring token: the link in a mail must keep working as long as the mails keep coming."""
    return jwt.encode({"sub": email, "topic": topic.value, "lang": language.value}, key, algorithm="HS256")


def read_unsubscribe_token(token: str, key: bytes) -> tuple[str, Unsubscribe, Language]:
    """Raises ValueError for a token that is forged, damaged or not an unsubscribe token."""
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["sub", "topic"]})
        return claims["sub"], Unsubscribe(claims["topic"]), Language(claims.get("lang", "nn"))
    except (jwt.PyJWTError, ValueError) as exc:
        raise ValueError(str(exc)) from exc
