"""Request and response models of the registration API (also the source of its OpenAPI document)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import available_timezones

from pydantic import (
    MISSING, AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.addresses import Email
from shared.fields import Flag, Moment, filled, whole
from shared.messages import Language

from .domain import EventStatus, OrganisationType, QuestionKind, Status


def _consent(value: bool) -> bool:
    if value is not True:
        raise PydanticCustomError("consent_required", "Du må samtykkje til at vi lagrar opplysningane dine.")
    return value


Text = filled(200)
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]


class Input(BaseModel):
    # Unknown fields are refused: a typo must not pass silently, and nothing unexpected reaches the store.
    model_config = ConfigDict(extra="forbid")


class EventKind(StrEnum):
    jam = "jam"
    workshop = "workshop"
    conference = "conference"
    webinar = "webinar"


TIMEZONES = frozenset(available_timezones())  # IANA names only: a path such as "Europe" is no zone


def _timezone(value: str) -> str:
    if value not in TIMEZONES:
        raise PydanticCustomError("timezone", "Ukjend tidssone (bruk t.d. Europe/Oslo).")
    return value


Capacity = whole(1, 100_000)
Timezone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]


class Question(Input):
    id: Slug = Field(description="Key of the answer, e.g. diett")
    text: Text
    kind: QuestionKind = QuestionKind.text
    options: list[Text] = Field(default_factory=list, max_length=50)
    required: Flag = False

    @model_validator(mode="after")
    def choices_have_options(self) -> Self:
        if (self.kind != QuestionKind.text) != bool(self.options):
            raise PydanticCustomError("options", "Val-spørsmål treng alternativ, tekstspørsmål ingen.")
        return self


class EventIn(Input):
    slug: Slug = Field(description="Address of the møteplass, e.g. innovasjonsjam-baerum")
    title: Text
    description: Annotated[str, StringConstraints(max_length=20000)] = ""
    kind: EventKind = EventKind.workshop
    organisers: list[Text] = Field(default_factory=list, max_length=20)
    starts_at: Moment
    ends_at: Moment
    venue: Text
    address: Annotated[str, StringConstraints(max_length=300)] = ""
    capacity: Capacity
    language: Language = Language.nn
    timezone: Timezone = "Europe/Oslo"
    registration_opens_at: Moment | None = None
    registration_closes_at: Moment | None = None
    waitlist_enabled: Flag = True
    guests_per_municipality: whole(0, 100) = 1
    require_email_confirmation: Flag = False
    questions: list[Question] = Field(default_factory=list, max_length=30)
    retention_days: whole(0, 3650) = Field(30,
                                description="Personal data is purged this many days after the end")
    published: Flag = Field(True, description="False keeps it a draft until POST /events/{slug}/publish")


class EventUpdate(Input):
    """Only the fields sent are changed. What a møteplass must have cannot be sent as null (a 422): only the
    registration window's ends can be cleared."""

    title: Text | MISSING = MISSING
    description: Annotated[str, StringConstraints(max_length=20000)] | MISSING = MISSING
    starts_at: Moment | MISSING = MISSING
    ends_at: Moment | MISSING = MISSING
    venue: Text | MISSING = MISSING
    address: Annotated[str, StringConstraints(max_length=300)] | MISSING = MISSING
    capacity: Capacity | MISSING = MISSING
    registration_opens_at: Moment | None | MISSING = MISSING
    registration_closes_at: Moment | None | MISSING = MISSING


class EventOut(BaseModel):
    slug: str
    title: str
    description: str
    kind: EventKind
    organisers: list[str]
    status: EventStatus
    starts_at: datetime
    ends_at: datetime
    venue: str
    address: str
    capacity: int
    language: Language
    timezone: str
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    waitlist_enabled: bool
    guests_per_municipality: int
    require_email_confirmation: bool
    questions: list[Question]
    retention_days: int
    seats_left: int
    waitlist_length: int


class EventAdminOut(EventOut):
    """A møteplass as admins see it: also who made its changes (the subject of their sign-in)."""

    created_by: str | None = None
    updated_by: str | None = Field(None, description="Who changed it last")
    published_by: str | None = None
    cancelled_by: str | None = None


class Municipality(Input):
    number: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] = Field(description="Kommunenummer, e.g. 3201")
    name: Text


def _one_answer_error(value, handler):
    # One readable error for the answer, not one per member of the union.
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("answer_type", "Svaret må vere tekst eller ei liste med tekst.") from None


Answer = Annotated[Annotated[str, StringConstraints(max_length=2000)]
                   | list[Annotated[str, StringConstraints(max_length=200)]], WrapValidator(_one_answer_error)]
Answers = Annotated[dict[Annotated[str, StringConstraints(max_length=80)], Answer], Field(max_length=30)]


class RegistrationIn(Input):
    # The rule of municipality_for_kommune, in the schema too (so that a client can know it).
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"organisation_type": {"const": "kommune"}}, "required": ["organisation_type"]},
        "then": {"required": ["municipality"], "properties": {"municipality": {"type": "object"}}}})

    name: Text
    email: Email
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ]{8,16}$")] | None = None
    organisation: Text
    organisation_type: OrganisationType = OrganisationType.anna
    municipality: Municipality | None = Field(None, description="Required when organisation_type is kommune")
    language: Language = Language.nn
    answers: Answers = Field(default_factory=dict, description="By question id")
    invite_code: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="A guest's code from their invitation")
    consent: Annotated[Flag, AfterValidator(_consent)] = Field(description="Must be true",
                                                               json_schema_extra={"const": True})
    privacy_version: Annotated[str, StringConstraints(max_length=40)] = Field(
        "2026-01", description="Version of the privacy text agreed to")

    @model_validator(mode="after")
    def municipality_for_kommune(self) -> Self:
        if self.organisation_type == OrganisationType.kommune and self.municipality is None:
            raise PydanticCustomError("municipality_required", "Vel kommunen du kjem frå.")
        return self


class TokenQuery(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="The secret token from the participant's email")


class RegistrationOut(BaseModel):
    id: str
    event_slug: str
    status: Status
    position: int | None = Field(None, description="Place on the waiting list (1 = next in line)")
    name: str | None = Field(None, description="None once erased (as email and organisation)")
    email: str | None = None
    phone: str | None = None
    organisation: str | None = None
    organisation_type: OrganisationType = OrganisationType.anna
    municipality: Municipality | None = None
    language: Language
    answers: dict[str, str | list[str]] = {}
    created_at: datetime


class RegistrationAdminOut(RegistrationOut):
    """A registration as admins see it: also who checked it in, cancelled it or erased it (by sign-in subject)."""

    checked_in_by: str | None = None
    cancelled_by: str | None = None
    erased_by: str | None = None


class RegistrationFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    organisation_type: OrganisationType | None = None
    municipality: Annotated[str, StringConstraints(pattern=r"^\d{4}$")] | None = Field(
        None, description="Kommunenummer")
    cursor: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = Field(
        None, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=500)


class RegistrationPage(BaseModel):
    items: list[RegistrationAdminOut]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last page")


class AnswersIn(Input):
    answers: Answers


class GuestInviteIn(Input):
    email: Email


class GuestInviteOut(BaseModel):
    event_slug: str
    municipality: str
    guest_email: str
