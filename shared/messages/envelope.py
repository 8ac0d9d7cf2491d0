"""CloudEvents 1.0 structured-mode envelope, generic over its typed payload."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TYPE_PREFIX = "no.moteplass."

# Marks a field as personal data in the JSON Schema / AsyncAPI document, so subscribers know what GDPR covers.
PERSONAL = {"x-personal-data": True}
SECRET_LINK = "Personal link holding a secret token; only the addressee may see it"


class Payload(BaseModel):
    """A message's data. Subclasses name their CloudEvents type; the routing key is derived from it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]  # e.g. "registration.confirmed.v1"
    summary: ClassVar[str] = ""


P = TypeVar("P", bound=Payload)


class CloudEvent(BaseModel, Generic[P]):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    # Extension attribute: the HTTP request that caused the event, for tracing across services.
    correlationid: str | None = None
    data: P

    @property
    def routing_key(self) -> str:
        return routing_key_of(self.type)


def type_of(payload_cls: type[Payload]) -> str:
    return TYPE_PREFIX + payload_cls.event_type


def routing_key_of(cloudevent_type: str) -> str:
    return cloudevent_type.removeprefix(TYPE_PREFIX)


def make_event(
    payload: Payload, *, source: str, subject: str | None = None, correlation_id: str | None = None, id: str | None = None
) -> CloudEvent:
    fields: dict[str, Any] = {}
    if id:
        fields["id"] = id
    return CloudEvent[type(payload)](
        source=source,
        type=type_of(type(payload)),
        subject=subject,
        correlationid=correlation_id,
        data=payload,
        **fields,
    )


def personal(annotation: Any, description: str = "Personal data") -> Any:
    """Annotate a payload field as personal data (shown in the generated schemas)."""
    return Annotated[annotation, Field(description=description, json_schema_extra=PERSONAL)]


__all__ = ["CloudEvent", "Payload", "make_event", "personal", "routing_key_of", "type_of", "TYPE_PREFIX"]
