"""In-memory stand-ins for the notifications service's store and mailer (cosmicpython's FakeRepository), so that its
use cases run in milliseconds without MongoDB, RabbitMQ or an SMTP server. The outbox is the shared one
(tests/support/fake_outbox.py): it publishes at once.

FakeStore keeps the promises of services/notifications/store.py's docstrings over the same domain types, and the
store contract (tests/integration/notifications/test_store.py) holds it to the same answers as the real store on
MongoDB or nx-27017."""

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from services.notifications import domain
from services.notifications.domain import (
    Attendee, Mail, NotificationRecord, Reminder, Status, Unsubscribe, Unsubscription,
)
from services.notifications.mailer import DeliveryError
from services.notifications.render import Outgoing
from shared.messages.registration import EventInfo
from tests.support.fake_outbox import FakeOutbox as FakeOutbox


class FakeStore:
    # The outbox relay is told a collection; here its name stands for it.
    notifications = "notifications"

    def __init__(self):
        self.records: dict[str, NotificationRecord] = {}
        self.outboxes: dict[str, list[dict]] = {}  # each record's outbox: the outcome events written with it
        self.attendees: dict[str, Attendee] = {}
        self.unsubscriptions: dict[tuple[str, Unsubscribe], Unsubscription] = {}
        self._ids = itertools.count(1)

    # Notifications

    def _by_key(self, message_id: str, mail: Mail) -> NotificationRecord | None:
        return next((r for r in self.records.values()
                     if (r.message_id, r.recipient, r.kind) == (message_id, mail.recipient, mail.kind)), None)

    async def claim(self, claims: list[tuple[str, Mail]], now: datetime, lease: timedelta
                    ) -> list[NotificationRecord | None]:
        claimed: list[NotificationRecord | None] = []
        for message_id, mail in claims:
            current = self._by_key(message_id, mail)
            if current is None:
                record = domain.first_claim(f"{next(self._ids):024x}", message_id, mail, now, lease)
                self.outboxes[record.id] = []
            elif domain.is_free(current, now):
                record = domain.take_over(current, now, lease)
            else:
                claimed.append(None)
                continue
            self.records[record.id] = record
            claimed.append(record)
        return claimed

    async def find_by_key(self, message_id: str, mail: Mail) -> NotificationRecord | None:
        return self._by_key(message_id, mail)

    def _holds(self, record: NotificationRecord) -> bool:
        """The compare-and-set: the record is still in the state this claim read."""
        stored = self.records.get(record.id)
        return stored is not None and (stored.status, stored.attempts) == (record.status, record.attempts)

    async def finish(self, record: NotificationRecord, status: Status, outbox_entry: dict | None, error: str | None,
                     now: datetime) -> bool:
        if not self._holds(record):
            stored = self.records.get(record.id)
            return stored is not None and (stored.status, stored.attempts) == (status, record.attempts)
        stored = self.records[record.id]
        self.records[record.id] = replace(stored, status=status, updated_at=now, lease_until=None, last_error=error,
                                          sent_at=now if status == Status.sent else stored.sent_at)
        if outbox_entry:
            self.outboxes[record.id].append(outbox_entry)
        return True

    async def release(self, record: NotificationRecord, now: datetime, error: str) -> None:
        if self._holds(record):
            self.records[record.id] = replace(self.records[record.id], status=Status.retrying, lease_until=None,
                                              updated_at=now, last_error=error)

    def outbox_batch(self, outcomes: list[tuple[str, dict]]) -> list[tuple[str, list[dict]]]:
        return [(record_id, [entry]) for record_id, entry in outcomes]

    async def get(self, notification_id: str) -> NotificationRecord | None:
        return self.records.get(notification_id)

    async def search(self, filters: dict[str, str], after: str | None, limit: int) -> list[NotificationRecord]:
        found = [r for r in self.records.values()
                 if all(getattr(r, field) == value for field, value in filters.items())
                 and (after is None or r.id < after)]
        return sorted(found, key=lambda r: r.id, reverse=True)[:limit]

    async def anonymise(self, email: str) -> int:
        erased = [r for r in self.records.values() if r.recipient == email]
        for record in erased:
            self.records[record.id] = replace(record, recipient=f"erased:{record.id}")
            self.outboxes[record.id] = []
        self.attendees = {rid: a for rid, a in self.attendees.items() if a.email != email}
        self.unsubscriptions = {k: u for k, u in self.unsubscriptions.items() if u.email != email}
        return len(erased)

    # Attendees

    async def remember_attendees(self, states: list[Attendee]) -> list[bool]:
        kept = []
        for state in states:
            stored = self.attendees.get(state.registration_id)
            if stored is not None and stored.as_of > state.as_of:
                kept.append(False)  # a message that arrived late
                continue
            if stored is not None and state.reminder is None:
                state = replace(state, reminder=stored.reminder, due=stored.due, lease_until=stored.lease_until)
            self.attendees[state.registration_id] = state
            kept.append(True)
        return kept

    async def attendees_of(self, event_slug: str) -> list[Attendee]:
        return [a for a in self.attendees.values() if a.event.slug == event_slug]

    def _change(self, which: Callable[[Attendee], bool], **changes) -> None:
        for rid, attendee in self.attendees.items():
            if which(attendee):
                self.attendees[rid] = replace(attendee, **changes)

    async def cancel_reminders(self, event_slug: str) -> None:
        self._change(lambda a: a.event.slug == event_slug and a.reminder in (Reminder.scheduled, Reminder.sending),
                     reminder=Reminder.cancelled)

    async def move_reminders(self, event: EventInfo, due: datetime) -> None:
        self._change(lambda a: a.event.slug == event.slug and a.event.sequence < event.sequence
                     and a.reminder in (Reminder.scheduled, Reminder.sent),
                     event=event, due=due, reminder=Reminder.scheduled, lease_until=None)

    async def take_due_reminder(self, now: datetime, lease: timedelta) -> Attendee | None:
        due = [a for a in self.attendees.values()
               if (a.reminder == Reminder.scheduled and a.due <= now)
               or (a.reminder == Reminder.sending and a.lease_until is not None and a.lease_until < now)]
        if not due:
            return None
        taken = replace(min(due, key=lambda a: a.due), reminder=Reminder.sending, lease_until=now + lease)
        self.attendees[taken.registration_id] = taken
        return taken

    async def reminder_done(self, registration_id: str) -> None:
        self._change(lambda a: a.registration_id == registration_id and a.reminder == Reminder.sending,
                     reminder=Reminder.sent, lease_until=None)

    # Unsubscriptions

    async def unsubscribe(self, unsubscription: Unsubscription) -> None:
        self.unsubscriptions.setdefault((unsubscription.email, unsubscription.topic), unsubscription)

    async def is_unsubscribed(self, email: str, topic: Unsubscribe) -> bool:
        return (email, topic) in self.unsubscriptions


class FakeMailer:
    """An SMTP server that takes every mail at once, unless told to refuse the next ones (`refuse`)."""

    pool_size = 1

    def __init__(self):
        self.sent: list[Outgoing] = []
        self.refusals: list[DeliveryError] = []

    def refuse(self, error: str, permanent: bool) -> None:
        self.refusals.append(DeliveryError(error, permanent=permanent))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Callable[[Outgoing], Awaitable[None]]]:
        yield self._send

    async def _send(self, message: Outgoing) -> None:
        if self.refusals:
            raise self.refusals.pop(0)
        self.sent.append(message)

    def to(self, address: str) -> list[Outgoing]:
        return [message for message in self.sent if address in message.recipients]
