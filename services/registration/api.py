"""Request and response models of the registration API (also the source of its OpenAPI document)."""

from datetime import datetime
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from shared.messages import Language

from .domain import Status


def _email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError("email", "E-postadressa er ikkje gyldig.", {"reason": str(exc)}) from exc


def _consent(value: bool) -> bool:
    if value is not True:
        raise PydanticCustomError("consent_required", "Du må samtykkje til at vi lagrar opplysningane dine.")
    return value


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]


class Input(BaseModel):
    # Unknown fields are refused: a typo must not pass silently, and nothing unexpected reaches the store.
    model_config = ConfigDict(extra="forbid")


class EventIn(Input):
    slug: Slug = Field(description="Address of the møteplass, e.g. innovasjonsjam-baerum")
    title: Text
    description: Annotated[str, StringConstraints(max_length=20000)] = ""
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    venue: Text
    capacity: int = Field(ge=1, le=100_000, strict=True)
    language: Language = Language.nn
    timezone: str = "Europe/Oslo"
    registration_opens_at: AwareDatetime | None = None
    registration_closes_at: AwareDatetime | None = None


class EventOut(BaseModel):
    slug: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    capacity: int
    language: Language
    timezone: str
    registration_opens_at: datetime | None
    registration_closes_at: datetime | None
    seats_left: int
    waitlist_length: int


class RegistrationIn(Input):
    name: Text
    email: Email
    organisation: Text
    consent: Annotated[bool, AfterValidator(_consent)] = Field(description="Must be true")
    language: Language = Language.nn


class TokenQuery(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="The secret token from the participant's email")


class RegistrationOut(BaseModel):
    id: str
    event_slug: str
    status: Status
    position: int | None = Field(None, description="Place on the waiting list (1 = next in line)")
    name: str
    email: str
    organisation: str
    language: Language
    created_at: datetime
