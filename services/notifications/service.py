"""The use cases of the notifications service: turn messages into mails and send each exactly once; the reminders.

Exactly once per (message id, recipient, kind): a send is claimed in the store with a lease before the SMTP
conversation and its outcome recorded the moment the server answers; a redelivered or replayed message finds
`sent` and does nothing. A claim held by another sender is waited out, with the message held, never counted as a
failed attempt: a live sender records its outcome within the lease, and a dead one's lease runs out, after which
the mail is taken over. The one way a mail can go twice is a crash between the server's 250 and that record: such
a resend is counted (`notifications_possible_copies_total`), and both carry the same Message-ID, derived from
(message id, recipient, kind), so the receiving system can drop the copy.

A store that does not answer is waited out too (the message held), and the record of a mail the server took is
retried until it is written: a store outage costs time, not a copy or an attempt.

The claims and the attendee states of a burst are group commits (shared.batching): one write for every mail in
flight; the outcomes are one write each, at once, since every moment before them is a window for a copy."""

import asyncio
import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from shared import logs, outbox
from shared.batching import GroupCommit
from shared.bus import PermanentFailure
from shared.messages import CloudEvent, make_event
from shared.messages.notifications import NotificationFailed, NotificationSent
from shared.messages.registration import EventCancelled, EventUpdated, RegistrationErased, RegistrationPayload
from shared.outbox import Outbox
from shared.settings import KeyPurpose, Settings

from . import domain
from .domain import Mail, NotificationRecord, Status, Unsubscribe, Unsubscription
from .mailer import DeliveryError, Mailer
from .render import Outgoing, compose
from .store import Store, unavailable

log = logging.getLogger(__name__)
SOURCE = "/moteplass/notifications"
MAILS = Counter("notifications_mails_total", "Mails by kind and outcome (sent, failed for good, retrying)",
                ["kind", "outcome"])
POSSIBLE_COPIES = Counter("notifications_possible_copies_total",
                          "Mails sent again after their sender died holding the claim, perhaps after the server had "
                          "taken them: possible copies (same Message-ID)", ["kind"])


# Mails claimed per pooled SMTP connection (see Notifier.lease).
CLAIM_AHEAD = 4


# How often a mail claimed by another sender looks again whether that sender is done (at most).
POLL_S = 1.0
# How long a message is held while the store does not answer before it goes the retry way (counting an attempt).
STORE_PATIENCE_S = 60.0


class Busy(Exception):
    """Another sender held this very mail for longer than any lease should last: look again after a retry delay."""


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
        self.lease = timedelta(seconds=max(30.0, (CLAIM_AHEAD + 2) * settings.smtp_timeout_s))
        self._claiming = GroupCommit(lambda claims: self.store.claim(claims, now(), self.lease))
        # The outcome events of the mails recorded meanwhile go out together.
        self._flushing = GroupCommit(self._flush)
        self._tracking = GroupCommit(self.store.remember_attendees)

    async def handle(self, event: CloudEvent) -> None:
        """Handle a message, holding it while the store does not answer (every step is safe to do again)."""
        await self._patiently(lambda: self._handle(event), STORE_PATIENCE_S)

    @staticmethod
    async def _patiently(step, patience_s: float):
        """Run a store step until the store answers, for up to patience_s, then let the error through."""
        deadline, pause = time.monotonic() + patience_s, 0.1
        for tries in itertools.count():
            try:
                return await step()
            except Exception as exc:
                if not unavailable(exc) or time.monotonic() + pause > deadline:
                    raise
                if tries == 0:  # once per step, not per try: an outage holds every message in flight
                    log.warning("the store does not answer; holding the work until it does", extra={"error": repr(exc)})
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _handle(self, event: CloudEvent) -> None:
        data = event.data
        mails = domain.plan(data)
        match data:
            case RegistrationErased():
                await self.store.anonymise(str(data.email))
            case RegistrationPayload():
                await self.track(data, event.time)
            case EventUpdated():
                if due := domain.reminder_due(data.event, self.settings.reminder_hours_before, now()):
                    await self.store.move_reminders(data.event, due)
                else:  # moved so close that the reminder time has passed: the update mail says it all
                    await self.store.cancel_reminders(data.event.slug)
                attendees = await self.store.attendees_of(data.event.slug)
                mails = domain.plan_event_update(data.event, attendees, data.changed, data.previous_starts_at)
            case EventCancelled():
                await self.store.cancel_reminders(data.event.slug)
        await self.deliver_all(event.id, mails)

    async def track(self, data: RegistrationPayload, as_of: datetime) -> None:
        """Remember the registration (to tell it about changes) and keep its reminder in step, in one write."""
        # An older message arriving late (say from a retry queue) changes nothing: the newer state decided.
        await self._tracking.submit(domain.attendee(data, as_of, self.settings.reminder_hours_before, now()))

    async def deliver_all(self, message_id: str, mails: list[Mail]) -> None:
        """Send every mail of a message; if any failed transiently, raise so the message comes back later (the
        mails already sent are then skipped)."""
        results = await asyncio.gather(*(self.deliver(message_id, mail) for mail in mails),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def deliver(self, message_id: str, mail: Mail) -> None:
        try:
            message = compose(mail, self.settings.mail_from, message_id, self.unsubscribe_url(mail))
        except Exception as exc:  # a template or data bug: retrying cannot help
            raise PermanentFailure(f"cannot compose the {mail.kind} mail: {exc!r}") from exc
        deadline = time.monotonic() + 2 * self.lease.total_seconds()
        while True:
            async with self._claimed:
                if (record := await self._claiming.submit((message_id, mail))) is not None:
                    return await self.send(record, mail, message)
            # Not ours: done already, or held by another sender — wait until it is done or its lease runs out.
            current = await self.store.find_by_key(message_id, mail)
            if current is None or current.status in domain.FINAL:
                return
            wait = domain.lease_left(current, now())
            if time.monotonic() + wait > deadline:
                raise Busy(f"{mail.kind} to a recipient of {message_id} is held by another sender")
            await asyncio.sleep(min(wait + 0.05, POLL_S))

    async def send(self, record: NotificationRecord, mail: Mail, message: Outgoing) -> None:
        """Send a claimed mail and record what came of it."""
        if mail.unsubscribe_topic and await self.store.is_unsubscribed(mail.recipient, mail.unsubscribe_topic):
            return await self.record(record, Status.unsubscribed)
        try:
            async with self.mailer.connection() as send:
                await send(message)
        except DeliveryError as exc:
            if not exc.permanent:
                MAILS.labels(mail.kind.value, Status.retrying.value).inc()
                # Let go of the claim (for the message's next delivery to take at once), store willing.
                await self._patiently(lambda: self.store.release(record, now(), str(exc)),
                                      self.lease.total_seconds())
                raise
            log.warning("mail refused for good", extra={"kind": mail.kind, "error": str(exc)})
            MAILS.labels(mail.kind.value, Status.failed.value).inc()
            failed = NotificationFailed(**self.outcome(record, mail), failed_at=now(), error=str(exc)[:1000])
            return await self.record(record, Status.failed, self.announce(record, failed), str(exc))
        sent = NotificationSent(**self.outcome(record, mail), sent_at=now())
        await self.record(record, Status.sent, self.announce(record, sent))
        MAILS.labels(mail.kind.value, Status.sent.value).inc()
        if record.possible_copy:
            POSSIBLE_COPIES.labels(mail.kind.value).inc()

    async def record(self, record: NotificationRecord, status: Status, entry: dict | None = None,
                     error: str | None = None) -> None:
        """Record a send's outcome at once, in its own write, and publish its event. Retried while the store does
        not answer, for as long as the claim lasts: a mail the server took and we failed to record would be sent
        again."""
        written = await self._patiently(lambda: self.store.finish(record, status, entry, error, now()),
                                        self.lease.total_seconds())
        if not written:
            log.error("a claim was taken over while its mail was being sent (the lease is too short)",
                      extra={"notification_id": record.id})
        elif entry:
            await self._flushing.submit((record.id, entry))

    @staticmethod
    def outcome(record: NotificationRecord, mail: Mail) -> dict:
        return {"notification_id": record.id, "message_id": record.message_id, "kind": mail.kind,
                "recipient": mail.recipient, "event_slug": mail.event_slug, "attempts": record.attempts}

    @staticmethod
    def announce(record: NotificationRecord, payload: NotificationSent | NotificationFailed) -> dict:
        # The outcome event is written with the status (outbox), so it is published even if the broker is away. It
        # carries the correlation id of what is being handled: the causing message's, or the reminder sweep's.
        return outbox.entry(make_event(payload, source=SOURCE, subject=record.id,
                                       correlation_id=logs.request_id.get()))

    async def _flush(self, batch: list[tuple[str, dict]]) -> list[None]:
        await self.relay.try_flush_many(self.store.notifications, self.store.outbox_batch(batch))
        return [None] * len(batch)

    def unsubscribe_url(self, mail: Mail) -> str | None:
        if mail.unsubscribe_topic is None:
            return mail.unsubscribe_url
        token = domain.unsubscribe_token(mail.recipient, mail.unsubscribe_topic, mail.language,
                                         self.settings.key(KeyPurpose.unsubscribe))
        return f"{self.settings.notifications_public_url.rstrip('/')}/unsubscribe?token={token}"

    async def send_due_reminders(self) -> int:
        sent = 0
        while (reminder := await self.store.take_due_reminder(now(), self.lease)) is not None:
            try:
                await self.deliver(domain.reminder_message_id(reminder), domain.reminder_mail(reminder))
            except Exception:
                # Left leased: another sweep (here or on another replica) retakes it when the lease runs out.
                log.warning("reminder not sent yet; will try again", exc_info=True)
                continue
            await self.store.reminder_done(reminder.registration_id)
            sent += 1
        return sent

    async def unsubscribe(self, email: str, topic: Unsubscribe) -> None:
        """The one-click unsubscribe: no more mail of this topic to this address."""
        await self.store.unsubscribe(Unsubscription(email, topic, now()))

    async def notifications(self, filters: dict[str, str], after: str | None, limit: int) -> list[NotificationRecord]:
        """The audit trail, newest first: records whose fields (recipient, event_slug, kind, status) have these
        values, after the record of id `after`."""
        return await self.store.search(filters, after, limit)

    async def notification(self, notification_id: str) -> NotificationRecord | None:
        return await self.store.get(notification_id)
