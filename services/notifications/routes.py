"""Notifications service HTTP routes: the audit trail and dead letters (the unsubscribe pages: pages.py)."""

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Role
from shared.bus import QueueNames
from shared.http import Api, ApiError
from shared.messages import Language
from shared.messages.notifications import NotificationKind
from shared.runtime import RUNTIME

from . import deadletters, domain
from .service import Notifier
from .domain import Status

SERVICE = "notifications"
NOTIFIER = web.AppKey("notifier", Notifier)
ADMIN = {Role.admin}
api = Api("Møteplass notifications", description="Mails for every domain event, their audit trail and dead letters.")


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipient: str | None = None
    event: str | None = Field(None, description="Slug of the møteplass")
    kind: NotificationKind | None = None
    status: Status | None = None
    after: str | None = Field(None, pattern="^[0-9a-f]{24}$", description="Cursor: `next` of the previous page")
    limit: int = Field(50, ge=1, le=200)


class Notification(BaseModel):
    id: str
    message_id: str
    recipient: str
    kind: NotificationKind
    status: Status
    attempts: int
    event_slug: str | None = None
    registration_id: str | None = None
    language: Language
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None

    @classmethod
    def of(cls, record: domain.NotificationRecord) -> "Notification":
        return cls.model_validate(record, from_attributes=True)


class NotificationPage(BaseModel):
    items: list[Notification]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class Replayed(BaseModel):
    replayed: int


@api.route("GET", "/notifications", query=NotificationQuery, response=NotificationPage, roles=ADMIN)
async def list_notifications(request: web.Request, query: NotificationQuery, claims: dict) -> NotificationPage:
    """The audit trail, newest first, filtered by recipient, event, kind and status."""
    filters = {field: value for field, value in {
        "recipient": query.recipient, "event_slug": query.event,
        "kind": query.kind and query.kind.value, "status": query.status and query.status.value}.items() if value}
    records = await request.app[NOTIFIER].notifications(filters, query.after, query.limit + 1)
    items = [Notification.of(record) for record in records[:query.limit]]
    return NotificationPage(items=items, next=items[-1].id if len(records) > query.limit else None)


@api.route("GET", "/notifications/{id}", response=Notification, roles=ADMIN, errors={404: "No such notification"})
async def get_notification(request: web.Request, claims: dict) -> Notification:
    record = await request.app[NOTIFIER].notification(request.match_info["id"])
    if record is None:
        raise ApiError(404, "Fann ikkje denne varslinga.")
    return Notification.of(record)


def queues(request: web.Request) -> QueueNames:
    return QueueNames(request.app[RUNTIME].settings.queue_name(SERVICE))


@api.route("GET", "/dead-letters", response=list[deadletters.ParkedMessage], roles=ADMIN)
async def list_dead_letters(request: web.Request, claims: dict) -> list[deadletters.ParkedMessage]:
    """Messages parked after too many failed attempts (the first 100)."""
    return await deadletters.parked(request.app[RUNTIME].bus, queues(request))


@api.route("POST", "/dead-letters/replay", response=Replayed, roles=ADMIN)
async def replay_dead_letters(request: web.Request, claims: dict) -> Replayed:
    """Put every parked message back on the main queue."""
    return Replayed(replayed=await deadletters.replay(request.app[RUNTIME].bus, queues(request)))
