"""The message consumer and the reminder loop: turn messages into mails and send each exactly once.

Exactly once per (message id, recipient, kind): a send is claimed in the store with a short lease before the
SMTP conversation and marked sent after it; a redelivered message finds `sent` and does nothing, and a lease
left by a crashed replica runs out so another may take the mail over.

The store writes of the hot path are group commits (shared.batching): the claims, the outcomes and the attendee
states of every mail in flight go in one write each, so a burst costs a few round trips per batch, not per mail."""

import asyncio
import logging
import time
from datetime import UTC, datetime

from prometheus_client import Counter

from shared import outbox
from shared.batching import GroupCommit
from shared.bus import PermanentFailure
from shared.messages import CloudEvent, make_event
from shared.messages.notifications import NotificationFailed, NotificationSent
from shared.messages.registration import (
    EventCancelled, EventUpdated, RegistrationCancelled, RegistrationConfirmed, RegistrationErased,
    RegistrationPayload, RegistrationPromoted,
)
from shared.outbox import Outbox
from shared.settings import Settings

from . import domain
from .domain import Mail, Status
from .mailer import DeliveryError, Mailer
from .render import compose
from .store import Outcome, Store

log = logging.getLogger(__name__)
SOURCE = "/moteplass/notifications"
BINDINGS = ["registration.#", "event.#", "comment.#"]
MAILS = Counter("notifications_mails_total", "Mails by kind and outcome (sent, failed for good, retrying)",
                ["kind", "outcome"])


# Mails claimed per pooled SMTP connection (see Notifier.lease_s).
CLAIM_AHEAD = 4
# Messages taken from the queue at once: more than the claims in flight, so that a burst's attendee writes and
# outcomes go to the store in batches of tens rather than a few (a third of the store requests per mail).
PREFETCH = 256


class Busy(Exception):
    """Another replica is sending this very mail right now: look again after a retry delay."""


def now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(self, settings: Settings, store: Store, mailer: Mailer, relay: Outbox):
        self.settings, self.store, self.mailer, self.relay = settings, store, mailer, relay
        # Mails are claimed before they wait for a pooled connection, so that claims go to the store in batches;
        # this many at most, so that the wait is bounded: the sends queued ahead on the pool, then its own.
        self._claimed = asyncio.Semaphore(CLAIM_AHEAD * mailer.pool_size)
        # Longer than that wait and one SMTP conversation (each bounded by the timeout), so a live sender never
        # loses its claim.
        self.lease_s = max(30.0, (CLAIM_AHEAD + 2) * settings.smtp_timeout_s)
        self._claiming = GroupCommit(lambda claims: self.store.claim(claims, time.time(), self.lease_s))
        self._finishing = GroupCommit(self._finish)
        self._tracking = GroupCommit(self.store.remember_attendees)

    async def handle(self, event: CloudEvent) -> None:
        data = event.data
        mails = domain.plan(data)
        match data:
            case RegistrationErased():
                await self.store.anonymise(str(data.email))
            case RegistrationPayload():
                await self.track(data, event.time)
            case EventUpdated():
                if due := domain.reminder_due(data.event, self.settings.reminder_hours_before, now()):
                    await self.store.move_reminders(data.event.model_dump(), due.timestamp())
                else:  # moved so close that the reminder time has passed: the update mail says it all
                    await self.store.cancel_reminders(data.event.slug)
                attendees = await self.store.attendees_of(data.event.slug)
                mails = domain.plan_event_update(data.event, attendees, data.changed, data.previous_starts_at)
            case EventCancelled():
                await self.store.cancel_reminders(data.event.slug)
        await self.deliver_all(event.id, mails, event.correlationid)

    async def track(self, data: RegistrationPayload, as_of: datetime) -> None:
        """Remember the registration (to tell it about changes) and keep its reminder in step, in one write."""
        fields = {**domain.attendee(data), "event": data.event.model_dump()}
        if isinstance(data, RegistrationConfirmed | RegistrationPromoted):
            if due := domain.reminder_due(data.event, self.settings.reminder_hours_before, now()):
                fields |= {"reminder": "scheduled", "due_ts": due.timestamp(), "lease_until_ts": None}
        elif isinstance(data, RegistrationCancelled):
            fields["reminder"] = "cancelled"
        # An older message arriving late (say from a retry queue) changes nothing: the newer state decided.
        await self._tracking.submit((data.registration_id, fields, as_of.timestamp()))

    async def deliver_all(self, message_id: str, mails: list[Mail], correlation_id: str | None = None) -> None:
        """Send every mail of a message; if any failed transiently, raise so the message comes back later (the
        mails already sent are then skipped)."""
        results = await asyncio.gather(*(self.deliver(message_id, mail, correlation_id) for mail in mails),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def deliver(self, message_id: str, mail: Mail, correlation_id: str | None = None) -> None:
        try:
            message = compose(mail, self.settings.mail_from, self.unsubscribe_url(mail))
        except Exception as exc:  # a template or data bug: retrying cannot help
            raise PermanentFailure(f"cannot compose the {mail.kind} mail: {exc!r}") from exc
        async with self._claimed:
            record = await self._claiming.submit((message_id, mail))
            if record is None:
                return await self.check_taken(message_id, mail)
            if mail.unsubscribe_topic and await self.store.is_unsubscribed(mail.recipient, mail.unsubscribe_topic):
                return await self._finishing.submit((record["_id"], Status.unsubscribed, None, None))
            try:
                async with self.mailer.connection() as send:
                    await send(message)
                refused = None
            except DeliveryError as exc:
                if not exc.permanent:
                    MAILS.labels(mail.kind.value, Status.retrying.value).inc()
                    await self.store.release(record["_id"], time.time(), str(exc))
                    raise
                refused = str(exc)
        if refused:
            log.warning("mail refused for good", extra={"kind": mail.kind, "error": refused})
            MAILS.labels(mail.kind.value, Status.failed.value).inc()
            failed = NotificationFailed(**self.outcome(record, mail), failed_at=now(), error=refused[:1000])
            return await self.finish(record, Status.failed, failed, correlation_id, refused)
        MAILS.labels(mail.kind.value, Status.sent.value).inc()
        sent = NotificationSent(**self.outcome(record, mail), sent_at=now())
        await self.finish(record, Status.sent, sent, correlation_id)

    async def check_taken(self, message_id: str, mail: Mail) -> None:
        """The mail was not ours to send: done already (nothing to do), or being sent elsewhere right now."""
        current = await self.store.find_by_key(message_id, mail)
        if current is not None and current["status"] == Status.sending:
            raise Busy(f"{mail.kind} to a recipient of {message_id} is being sent by another replica")

    @staticmethod
    def outcome(record: dict, mail: Mail) -> dict:
        return {"notification_id": str(record["_id"]), "message_id": record["message_id"], "kind": mail.kind,
                "recipient": mail.recipient, "event_slug": mail.event_slug, "attempts": record["attempts"]}

    async def finish(self, record: dict, status: Status, payload: NotificationSent | NotificationFailed,
                     correlation_id: str | None, error: str | None = None) -> None:
        # The outcome event is written with the status (outbox), so it is published even if the broker is away.
        entry = outbox.entry(make_event(payload, source=SOURCE, subject=str(record["_id"]),
                                        correlation_id=correlation_id))
        await self._finishing.submit((record["_id"], status, entry, error))

    async def _finish(self, outcomes: list[Outcome]) -> list[None]:
        await self.store.finish(outcomes, time.time())
        await self.relay.try_flush_many(self.store.notifications,
                                        [(doc_id, [entry]) for doc_id, _, entry, _ in outcomes if entry])
        return [None] * len(outcomes)

    def unsubscribe_url(self, mail: Mail) -> str | None:
        if mail.unsubscribe_topic is None:
            return mail.unsubscribe_url
        token = domain.unsubscribe_token(mail.recipient, mail.unsubscribe_topic, mail.language,
                                         self.settings.jwt_secret.get_secret_value())
        return f"{self.settings.notifications_public_url.rstrip('/')}/unsubscribe?token={token}"

    async def send_due_reminders(self) -> int:
        sent = 0
        while (reminder := await self.store.take_due_reminder(time.time(), self.lease_s)) is not None:
            try:
                await self.deliver(domain.reminder_message_id(reminder), domain.reminder_mail(reminder))
            except Exception:
                # Left leased: another sweep (here or on another replica) retakes it when the lease runs out.
                log.warning("reminder not sent yet; will try again", exc_info=True)
                continue
            await self.store.reminder_done(reminder["_id"])
            sent += 1
        return sent

