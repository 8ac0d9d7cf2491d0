"""Messages published by the registration service (routing keys registration.* and event.*)."""

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from .common import Language
from .envelope import SECRET_LINK, URI, Payload, personal
from .staff import SignInLink


def calendar_uid(event_slug: str, registration_id: str) -> str:
    """The UID of a participant's calendar entry for a møteplass: the same in every invitation, update and
    cancellation mailed, and in the file their manage page offers, so each replaces the one before."""
    return f"{event_slug}.{registration_id}@moteplass.no"


class RegistrationStatus(StrEnum):
    """Where a registration stands. Open: a later producer may add statuses; treat one you do not know as holding
    no seat."""

    pending_confirmation = "pending_confirmation"
    confirmed = "confirmed"
    waitlisted = "waitlisted"
    cancelled = "cancelled"
    checked_in = "checked_in"


class EventInfo(BaseModel):
    """What a subscriber needs to tell someone about a møteplass without asking the registration service."""

    model_config = ConfigDict(frozen=True)
    slug: str
    title: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    venue: str
    address: str | None = None
    timezone: str = "Europe/Oslo"
    language: Language = Language.nn
    url: str | None = Field(None, description="The møteplass's public page", json_schema_extra=URI)
    # Bumped on every change of time or place: calendar invites use it as their SEQUENCE.
    sequence: int = 0


class RegistrationPayload(Payload):
    event: EventInfo
    registration_id: str
    name: personal(str)
    email: personal(EmailStr)
    language: Language
    status: RegistrationStatus
    manage_url: personal(str | None, SECRET_LINK, **URI) = None


class RegistrationPending(RegistrationPayload):
    event_type = "registration.pending.v1"
    summary = "A registration waits for its email address to be confirmed (double opt-in)."
    confirm_url: personal(str, SECRET_LINK, **URI)
    expires_at: AwareDatetime


class RegistrationConfirmed(RegistrationPayload):
    event_type = "registration.confirmed.v1"
    summary = "A participant holds a seat."


class RegistrationWaitlisted(RegistrationPayload):
    event_type = "registration.waitlisted.v1"
    summary = "The møteplass was full; the participant is on the waiting list."
    position: int = Field(ge=1, description="Place in the waiting list when this was published (1 = next in line)")


class RegistrationPromoted(RegistrationPayload):
    event_type = "registration.promoted.v1"
    summary = "A seat freed and the first on the waiting list now holds it."


class Cancellation(RegistrationPayload):
    reason: Literal["participant", "admin", "event_cancelled", "left_waiting_list"] = Field(
        "participant", description="Who or what cancelled it. Open: treat a reason you do not know as \"admin\".")


class RegistrationCancelledV1(Cancellation):
    event_type = "registration.cancelled.v1"
    summary = "A registration was cancelled (by the participant, an admin, or because the møteplass was cancelled)."


class RegistrationCancelled(Cancellation):
    event_type = "registration.cancelled.v2"
    summary = ("A registration was cancelled (by the participant, an admin, or because the møteplass was cancelled), "
               "with what it was before.")
    replaces = RegistrationCancelledV1
    replaces_until = date(2027, 6, 30)
    previous_status: RegistrationStatus | None = Field(
        None, description="What the registration was before it was cancelled: only a seat (confirmed, checked_in) "
                          "came with a calendar invitation to withdraw. None when that was not recorded.")


class RegistrationCheckedIn(RegistrationPayload):
    event_type = "registration.checked_in.v1"
    summary = "A participant was checked in at the door."


class RegistrationErased(Payload):
    event_type = "registration.erased.v1"
    summary = "A person's data was erased (on request or at the end of retention): delete or anonymise your copies."
    registration_id: str
    event_slug: str
    email: personal(EmailStr, "Whose copies to delete")
    reason: Literal["request", "retention"] = Field(
        description="Why: the person asked, or the retention period ended. Open: erase whatever the reason.")


class GuestInvited(Payload):
    event_type = "registration.guest_invited.v1"
    summary = "A participant from a municipality invited one guest from outside it."
    event: EventInfo
    registration_id: str
    inviter_name: personal(str)
    municipality: str
    guest_email: personal(EmailStr)
    language: Language
    invite_url: personal(str, SECRET_LINK, **URI)


class EventChange(Payload):
    event: EventInfo
    changed: list[str] = Field(default_factory=list, description="Names of the fields that changed")


class EventPublished(EventChange):
    event_type = "event.published.v1"
    summary = "A møteplass is open for registration."


class EventUpdated(EventChange):
    event_type = "event.updated.v1"
    summary = "The time or place of a møteplass changed."
    previous_starts_at: datetime | None = None


class EventCancelled(EventChange):
    event_type = "event.cancelled.v1"
    summary = "A møteplass was cancelled."


class StaffSignInRequested(SignInLink):
    event_type = "registration.sign_in_requested.v1"
    summary = "An admin asked to sign in to the registration pages (door page): mail them the single-use link."
