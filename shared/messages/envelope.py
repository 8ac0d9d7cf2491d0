"""CloudEvents 1.0 structured-mode envelope, generic over its typed payload."""

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import tracing

TYPE_PREFIX = "no.moteplass."

# Marks a field as personal data in the JSON Schema / AsyncAPI document, so subscribers know what GDPR covers.
PERSONAL = {"x-personal-data": True}
# The Auth Context extension's type of principal for a signed-in admin or moderator (an end user of the app).
APP_USER = "app_user"
SECRET_LINK = "Personal link holding a secret token; only the addressee may see it"
URI = {"format": "uri"}


class Payload(BaseModel):
    """A message's data. Subclasses name their CloudEvents type; the routing key is derived from it.

    Open to additions (the README's evolution policy): a newer producer may add optional fields within a version,
    and readers ignore the fields they do not know."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    event_type: ClassVar[str]  # e.g. "registration.confirmed.v1"
    summary: ClassVar[str] = ""
    # A new major version names the one it replaces and until when that one is still published beside it.
    replaces: ClassVar[type["Payload"] | None] = None
    replaces_until: ClassVar[date | None] = None


P = TypeVar("P", bound=Payload)


class CloudEvent(BaseModel, Generic[P]):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1,
                    description="Unique per message: a redelivered or republished message keeps it (deduplicate on it)")
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    # Extension attribute: the HTTP request or the message that caused the event, for tracing across services.
    correlationid: str | None = Field(None, description="The request id of the HTTP request, or the correlation id "
                                                        "of the message, that caused this event")
    # CloudEvents distributed-tracing extension: the W3C trace context of the work that made the event, which
    # every consumer continues (see shared/tracing.py).
    traceparent: str | None = Field(None, description="W3C Trace Context `traceparent` of the span that made this "
                                                      "event (CloudEvents distributed-tracing extension)")
    tracestate: str | None = Field(None, description="W3C Trace Context `tracestate` that goes with traceparent")
    # Extension attributes of CloudEvents' Auth Context (cloudevents/spec extensions/authcontext.md): who caused the
    # event, set when an admin's or a moderator's action did. In the envelope, not in `data`: the same for every
    # type, and every data schema first published was closed (a new data field would break its v1 readers).
    authtype: str | None = Field(None, description=f"\"{APP_USER}\" when a signed-in admin or moderator caused this "
                                                   "event (then authid says who); absent otherwise")
    authid: str | None = Field(None, description="Who caused this event: the subject of the admin's or moderator's "
                                                 "sign-in, often an email address", json_schema_extra=PERSONAL)
    data: P

    @property
    def routing_key(self) -> str:
        return routing_key_of(self.type)


def type_of(payload_cls: type[Payload]) -> str:
    return TYPE_PREFIX + payload_cls.event_type


def routing_key_of(cloudevent_type: str) -> str:
    return cloudevent_type.removeprefix(TYPE_PREFIX)


def make_event(
    payload: Payload, *, source: str, subject: str | None = None, correlation_id: str | None = None, id: str | None = None,
    actor: str | None = None,
) -> CloudEvent:
    """`actor`: the admin or moderator whose action caused the event (the subject of their sign-in), if one did."""
    # The trace this event continues, if any (stored with it, so it survives the outbox).
    fields: dict[str, Any] = tracing.current()
    if id:
        fields["id"] = id
    if actor:
        fields |= {"authtype": APP_USER, "authid": actor}
    return CloudEvent[type(payload)](
        source=source,
        type=type_of(type(payload)),
        subject=subject,
        correlationid=correlation_id,
        data=payload,
        **fields,
    )


def overlapping(payload_cls: type[Payload], today: date | None = None) -> bool:
    """Whether the older major version this type replaces is still published beside it (today, or on `today`)."""
    return payload_cls.replaces is not None and (today or datetime.now(UTC).date()) <= payload_cls.replaces_until


def also_published(event: CloudEvent, today: date | None = None) -> list[CloudEvent]:
    """The same message in the older major version its type replaces, while that is still published beside it
    (its id derived from this one's, so a republished pair deduplicates like any message). Not a message with a
    value the older version's enumeration lacks (a kind of mail added since): its readers were promised no other."""
    if not overlapping(type(event.data), today):
        return []
    older = type(event.data).replaces
    try:
        data = older.model_validate(event.data.model_dump())
    except ValidationError as error:
        if all(problem["type"] == "enum" for problem in error.errors()):
            return []
        raise
    derived_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event.id}#{older.event_type}"))
    return [CloudEvent[older](**event.model_dump(exclude={"id", "type", "data"}), id=derived_id, type=type_of(older),
                              data=data)]


def personal(annotation: Any, description: str = "Personal data", **schema: Any) -> Any:
    """Annotate a payload field as personal data (shown in the generated schemas), with more schema keywords if
    given (e.g. URI)."""
    return Annotated[annotation, Field(description=description, json_schema_extra={**PERSONAL, **schema})]


__all__ = ["CloudEvent", "Payload", "URI", "also_published", "make_event", "personal", "routing_key_of", "type_of",
           "TYPE_PREFIX"]
