"""Use cases of services/notifications/service.py run over the in-memory store, mailer and outbox (fakes.py): no
MongoDB, RabbitMQ or SMTP, milliseconds each. What they check: the mails handed to the mail server (by their
Message-ID, which names the message, the recipient and the kind), the records stored and the outcome events
published. The clock is the service's `now`, set by the test; the batching (GroupCommit) runs as in production."""

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.notifications import service
from services.notifications.domain import Reminder, Status, Unsubscribe, mail_id, plan
from services.notifications.mailer import DeliveryError
from services.notifications.render import Outgoing
from services.notifications.service import Busy, Notifier
from shared.messages import CloudEvent, Payload, make_event
from shared.messages.comments import CommentErasureRequested, CommentPublished, CommentSubmitted, ParentComment
from shared.messages.notifications import NotificationKind as Kind
from shared.messages.registration import (
    EventCancelled, EventInfo, EventUpdated, GuestInvited, RegistrationCancelled, RegistrationCheckedIn,
    RegistrationConfirmed, RegistrationErased, RegistrationPending, RegistrationPromoted, RegistrationWaitlisted,
    StaffSignInRequested,
)
from shared.settings import Settings

from .fakes import FakeMailer, FakeOutbox, FakeStore

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
START = T0 + timedelta(days=3)
EVENT = EventInfo(slug="innovasjonsjam-baerum", title="Innovasjonsjam i Bærum", starts_at=START,
                  ends_at=START + timedelta(hours=6), venue="Bærum rådhus")
DUE = START - timedelta(hours=24)  # the reminder, with the default REMINDER_HOURS_BEFORE
KARI, OLA = "kari@example.no", "ola@example.no"
SECOND = timedelta(seconds=1)


class Clock:
    """The service's `now`, moved by the test."""

    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(service, "now", clock)
    return clock


@pytest.fixture
def notifier() -> Notifier:
    return Notifier(Settings(jwt_secret="unit-test-secret-long-enough-for-hs256"), FakeStore(), FakeMailer(),
                    FakeOutbox())


def person(email: str = KARI, registration_id: str = "r1", **changes) -> dict:
    return {"event": EVENT, "registration_id": registration_id, "name": "Kari Nordmann", "email": email,
            "language": "nn", "manage_url": f"https://moteplass.example.no/m/{registration_id}?token=t", **changes}


def confirmed(email: str = KARI, registration_id: str = "r1") -> RegistrationConfirmed:
    return RegistrationConfirmed(**person(email, registration_id), status="confirmed")


async def handle(notifier: Notifier, payload: Payload) -> CloudEvent:
    event = make_event(payload, source="/moteplass/tests")
    await notifier.handle(event)
    return event


def message_ids(sent: list[Outgoing]) -> list[str]:
    return [email.message_from_bytes(m.data, policy=email.policy.default)["Message-ID"] for m in sent]


def named(message_id: str, recipient: str, kind: Kind) -> str:
    return f"<{mail_id(message_id, recipient, kind)}@example.no>"


def announced(notifier: Notifier, outcome: str = "sent") -> list[dict]:
    return [m["data"] for m in notifier.relay.messages(f"notification.{outcome}.v2")]


async def records(notifier: Notifier, **filters: str) -> list:
    return await notifier.notifications(filters, None, 100)


COMMENT = {"thread_id": "innovasjonsjam-baerum", "comment_id": "c2", "author_name": "Ola", "excerpt": "Godt poeng",
           "url": "https://moteplass.example.no/jam#c2"}


@pytest.mark.parametrize(("payload", "mails"), [
    (confirmed(), [(KARI, Kind.confirmed)]),
    (RegistrationWaitlisted(**person(), status="waitlisted", position=2), [(KARI, Kind.waitlisted)]),
    (RegistrationPromoted(**person(), status="confirmed"), [(KARI, Kind.promoted)]),
    (RegistrationCancelled(**person(), status="cancelled"), [(KARI, Kind.cancelled)]),
    (RegistrationCancelled(**person(), status="cancelled", reason="event_cancelled"), [(KARI, Kind.event_cancelled)]),
    (RegistrationPending(**person(), status="pending_confirmation", confirm_url="https://moteplass.example.no/c",
                         expires_at=T0 + timedelta(days=1)), [(KARI, Kind.confirm_email)]),
    (RegistrationCheckedIn(**person(), status="checked_in"), []),
    (GuestInvited(event=EVENT, registration_id="r1", inviter_name="Kari", municipality="Bærum", guest_email=OLA,
                  language="nb", invite_url="https://moteplass.example.no/i"), [(OLA, Kind.guest_invite)]),
    (CommentSubmitted(**COMMENT, status="pending", moderation_url="https://moteplass.example.no/moderation",
                      moderator_emails=[KARI, OLA, KARI]), [(KARI, Kind.comment_submitted),
                                                            (OLA, Kind.comment_submitted)]),
    (CommentPublished(**COMMENT, status="approved", parent=ParentComment(
        comment_id="c1", author_name="Kari", email=KARI, unsubscribe_url="https://moteplass.example.no/u")),
     [(KARI, Kind.comment_published)]),
    (CommentErasureRequested(email=KARI, comment_count=2, erase_url="https://moteplass.example.no/e",
                             expires_at=T0 + timedelta(days=1)), [(KARI, Kind.comment_erasure)]),
    (StaffSignInRequested(email=KARI, role="admin", sign_in_url="https://moteplass.example.no/s",
                          expires_at=T0 + timedelta(minutes=15)), [(KARI, Kind.staff_sign_in)]),
], ids=lambda value: type(value).__name__ if isinstance(value, Payload) else None)
async def test_each_message_is_planned_into_its_mails_and_each_is_sent_once_and_announced(notifier, payload, mails):
    event = await handle(notifier, payload)
    assert sorted(message_ids(notifier.mailer.sent)) == sorted(named(event.id, to, kind) for to, kind in mails)
    stored = await records(notifier)
    assert sorted((r.recipient, r.kind, r.status, r.attempts) for r in stored) == sorted(
        (to, kind, Status.sent, 1) for to, kind in mails)
    assert sorted(a["notification_id"] for a in announced(notifier)) == sorted(r.id for r in stored)


async def test_a_redelivered_message_sends_nothing_again(notifier):
    event = make_event(confirmed(), source="/moteplass/tests")
    await notifier.handle(event)
    await notifier.handle(event)  # the broker delivers it again
    assert message_ids(notifier.mailer.sent) == [named(event.id, KARI, Kind.confirmed)]
    [record] = await records(notifier)
    assert (record.status, record.attempts) == (Status.sent, 1) and len(announced(notifier)) == 1


async def test_a_mail_held_by_another_live_sender_is_waited_for_and_not_sent(notifier, clock, monkeypatch):
    monkeypatch.setattr(service, "POLL_S", 0.01)
    event = make_event(confirmed(), source="/moteplass/tests")
    [other] = await notifier.store.claim([(event.id, *plan(event.data))], clock(), notifier.lease)

    handling = asyncio.create_task(notifier.handle(event))
    await asyncio.sleep(0.05)  # it looked a few times: the other replica holds the mail
    assert not handling.done() and notifier.mailer.sent == []
    await notifier.store.finish(other, Status.sent, None, None, clock())  # the other replica is done
    await asyncio.wait_for(handling, timeout=1)
    assert notifier.mailer.sent == []
    [record] = await records(notifier)
    assert (record.status, record.attempts, record.possible_copy) == (Status.sent, 1, False)


async def test_a_mail_held_longer_than_any_lease_lasts_is_left_for_a_retry(notifier, clock):
    event = make_event(confirmed(), source="/moteplass/tests")
    await notifier.store.claim([(event.id, *plan(event.data))], clock(), 10 * notifier.lease)
    with pytest.raises(Busy):
        await asyncio.wait_for(notifier.handle(event), timeout=1)  # at once, not after waiting
    assert notifier.mailer.sent == []


def possible_copies() -> float:
    return REGISTRY.get_sample_value("notifications_possible_copies_total", {"kind": "confirmed"}) or 0.0


async def test_a_claim_whose_lease_ran_out_is_taken_over_and_counted_as_a_possible_copy(notifier, clock):
    event = make_event(confirmed(), source="/moteplass/tests")
    # A replica claimed it and died: maybe after the server had taken the mail, maybe before.
    [dead] = await notifier.store.claim([(event.id, *plan(event.data))], clock() - 2 * notifier.lease,
                                        notifier.lease)
    before = possible_copies()
    await notifier.handle(event)
    assert message_ids(notifier.mailer.sent) == [named(event.id, KARI, Kind.confirmed)]  # the same Message-ID
    record = await notifier.notification(dead.id)
    assert (record.status, record.attempts, record.possible_copy) == (Status.sent, 2, True)
    assert possible_copies() == before + 1
    assert [a["attempts"] for a in announced(notifier)] == [2]


async def test_a_transient_smtp_failure_releases_the_claim_and_raises_for_a_retry(notifier):
    notifier.mailer.refuse("SMTPServerDisconnected: Connection lost", permanent=False)
    event = make_event(confirmed(), source="/moteplass/tests")
    with pytest.raises(DeliveryError):
        await notifier.handle(event)
    [record] = await records(notifier)
    assert (record.status, record.attempts, record.lease_until) == (Status.retrying, 1, None)
    assert "Connection lost" in record.last_error
    assert notifier.mailer.sent == [] and announced(notifier) == []

    await notifier.handle(event)  # the message comes back from its retry queue: taken again at once
    assert message_ids(notifier.mailer.sent) == [named(event.id, KARI, Kind.confirmed)]
    [record] = await records(notifier)
    assert (record.status, record.attempts, record.possible_copy) == (Status.sent, 2, False)


async def test_a_permanent_failure_is_recorded_as_failed_and_announced_and_not_retried(notifier):
    notifier.mailer.refuse("550 5.1.1 No such mailbox", permanent=True)
    event = await handle(notifier, confirmed())  # no exception: a retry cannot help
    [record] = await records(notifier)
    assert (record.status, record.attempts, record.last_error) == (Status.failed, 1, "550 5.1.1 No such mailbox")
    [failed] = announced(notifier, "failed")
    assert (failed["notification_id"], failed["recipient"], failed["error"]) == (
        record.id, KARI, "550 5.1.1 No such mailbox")
    await notifier.handle(event)  # replayed: still nothing to send
    assert notifier.mailer.sent == [] and announced(notifier) == []


async def test_reminders_come_due_hours_before_the_start_and_go_out_once(notifier, clock):
    await handle(notifier, confirmed(KARI, "r1"))
    await handle(notifier, RegistrationWaitlisted(**person(OLA, "r2"), status="waitlisted", position=1))
    clock.at = DUE - SECOND
    await notifier.send_due_reminders()
    assert len(notifier.mailer.sent) == 2  # the confirmation and the waiting-list mail, no reminder yet

    clock.at = DUE + SECOND
    assert await notifier.send_due_reminders() == 1
    assert await notifier.send_due_reminders() == 0  # the next sweep finds it done
    assert message_ids(notifier.mailer.to(KARI))[1:] == [named("reminder:r1:0", KARI, Kind.reminder)]
    assert len(notifier.mailer.to(OLA)) == 1  # a place on the waiting list is not reminded
    [reminder] = await records(notifier, kind="reminder")
    assert (reminder.message_id, reminder.status) == ("reminder:r1:0", Status.sent)
    assert {a.registration_id: a.reminder for a in await notifier.store.attendees_of(EVENT.slug)} == {
        "r1": Reminder.sent, "r2": None}


async def test_a_reminder_not_sent_is_tried_again_when_its_lease_ran_out(notifier, clock):
    await handle(notifier, confirmed())
    notifier.mailer.refuse("SMTPServerDisconnected", permanent=False)
    clock.at = DUE
    assert await notifier.send_due_reminders() == 0  # left leased
    clock.at = DUE + notifier.lease - SECOND
    assert await notifier.send_due_reminders() == 0  # still leased
    clock.at = DUE + notifier.lease + SECOND
    assert await notifier.send_due_reminders() == 1
    assert message_ids(notifier.mailer.to(KARI))[1:] == [named("reminder:r1:0", KARI, Kind.reminder)]


async def test_an_unsubscribed_recipient_gets_no_reminder_but_still_the_mail_that_is_not_optional(notifier, clock):
    await notifier.unsubscribe(KARI, Unsubscribe.reminder)
    confirmation = await handle(notifier, confirmed(KARI, "r1"))
    await handle(notifier, confirmed(OLA, "r2"))
    clock.at = DUE
    await notifier.send_due_reminders()
    assert message_ids(notifier.mailer.to(KARI)) == [named(confirmation.id, KARI, Kind.confirmed)]
    assert message_ids(notifier.mailer.to(OLA))[1:] == [named("reminder:r2:0", OLA, Kind.reminder)]
    [unsubscribed] = await records(notifier, recipient=KARI, kind="reminder")
    assert unsubscribed.status == Status.unsubscribed


async def test_an_older_message_arriving_late_changes_no_attendee(notifier, clock):
    joined = make_event(confirmed(), source="/moteplass/tests")
    left = make_event(RegistrationCancelled(**person(), status="cancelled"), source="/moteplass/tests")
    left = left.model_copy(update={"time": joined.time + SECOND})
    await notifier.handle(left)
    await notifier.handle(joined)  # from a retry queue, after the cancellation
    [attendee] = await notifier.store.attendees_of(EVENT.slug)
    assert (attendee.status, attendee.reminder) == ("cancelled", Reminder.cancelled)
    clock.at = DUE
    await notifier.send_due_reminders()
    assert await records(notifier, kind="reminder") == []


async def test_erasure_anonymises_the_persons_records_and_forgets_them(notifier, clock):
    await notifier.unsubscribe(KARI, Unsubscribe.reminder)
    await handle(notifier, confirmed(KARI, "r1"))
    await handle(notifier, confirmed(OLA, "r2"))
    await handle(notifier, RegistrationErased(registration_id="r1", event_slug=EVENT.slug, email=KARI,
                                              reason="request"))
    assert await records(notifier, recipient=KARI) == []
    [erased] = [r for r in await records(notifier) if r.registration_id == "r1"]
    assert (erased.kind, erased.status) == (Kind.confirmed, Status.sent) and KARI not in erased.recipient
    assert [a.registration_id for a in await notifier.store.attendees_of(EVENT.slug)] == ["r2"]
    assert not await notifier.store.is_unsubscribed(KARI, Unsubscribe.reminder)
    clock.at = DUE
    await notifier.send_due_reminders()
    assert [r.recipient for r in await records(notifier, kind="reminder")] == [OLA]


async def test_a_moved_event_tells_its_attendees_and_moves_their_reminders(notifier, clock):
    await handle(notifier, confirmed(KARI, "r1"))
    await handle(notifier, RegistrationWaitlisted(**person(OLA, "r2"), status="waitlisted", position=1))
    await handle(notifier, RegistrationCancelled(**person("per@example.no", "r3"), status="cancelled"))
    later = timedelta(days=2)
    moved = EVENT.model_copy(update={"starts_at": START + later, "ends_at": EVENT.ends_at + later, "sequence": 1})
    update = await handle(notifier, EventUpdated(event=moved, changed=["starts_at"], previous_starts_at=START))

    updates = [m for m in notifier.mailer.sent
               if message_ids([m])[0] in {named(update.id, to, Kind.event_updated) for to in (KARI, OLA)}]
    assert sorted(m.recipients[0] for m in updates) == [KARI, OLA]  # not the one who cancelled
    invited = {m.recipients[0]: b"text/calendar" in m.data for m in updates}
    assert invited == {KARI: True, OLA: False}  # the seat holder's calendar entry moves with it

    clock.at = DUE + SECOND
    await notifier.send_due_reminders()
    assert await records(notifier, kind="reminder") == []  # not at the old time
    clock.at = DUE + later
    await notifier.send_due_reminders()
    [reminder] = await records(notifier, kind="reminder")
    assert (reminder.message_id, reminder.recipient) == ("reminder:r1:1", KARI)  # of the new version


async def test_an_event_moved_so_close_that_its_reminder_time_passed_cancels_the_reminders(notifier, clock):
    await handle(notifier, confirmed())
    soon = EVENT.model_copy(update={"starts_at": T0 + timedelta(hours=2), "ends_at": T0 + timedelta(hours=8),
                                    "sequence": 1})
    await handle(notifier, EventUpdated(event=soon, changed=["starts_at"], previous_starts_at=START))
    [attendee] = await notifier.store.attendees_of(EVENT.slug)
    assert attendee.reminder == Reminder.cancelled
    clock.at = DUE + timedelta(days=1)
    await notifier.send_due_reminders()
    assert await records(notifier, kind="reminder") == []


async def test_a_cancelled_event_cancels_its_reminders(notifier, clock):
    await handle(notifier, confirmed(KARI, "r1"))
    await handle(notifier, confirmed(OLA, "r2"))
    await handle(notifier, EventCancelled(event=EVENT))
    assert {a.reminder for a in await notifier.store.attendees_of(EVENT.slug)} == {Reminder.cancelled}
    clock.at = DUE
    assert await notifier.send_due_reminders() == 0
    assert await records(notifier, kind="reminder") == []
