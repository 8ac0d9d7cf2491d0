"""The store contract of the notifications service: what services/notifications/store.py promises, asserted against
the real store (nx-27017, or MongoDB at MONGO_URL) and against the in-memory FakeStore the unit tests use, so that
the fake answers as the store does. Records and attendees read back as they were written (the domain's types, with
datetimes and id strings, whatever the store keeps them as)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.notifications.domain import Attendee, Reminder, Status, Unsubscribe, Unsubscription, plan
from services.notifications.store import Store
from shared.messages import Language
from shared.messages.registration import RegistrationStatus
from tests.unit.notifications.fakes import FakeStore

from .conftest import address, confirmed, event_info

SECOND = timedelta(seconds=1)
LEASE = 30 * SECOND
# Whole seconds: MongoDB keeps datetimes to the millisecond, and records must read back equal.
NOW = datetime.fromtimestamp(1_800_000_000, UTC)


@pytest.fixture(params=["store", "fake"])
async def store(request, settings, mongo_url):
    if request.param == "fake":
        yield FakeStore()
        return
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("notifications")])
    await store.ensure_indexes()
    yield store
    await client.close()


async def test_a_claim_is_exclusive_until_its_lease_runs_out_and_final_once_sent(store):
    [mail] = plan(confirmed(address()))

    [first] = await store.claim([("m1", mail)], NOW, LEASE)
    assert (first.status, first.attempts, first.lease_until) == (Status.sending, 1, NOW + LEASE)
    assert await store.get(first.id) == first  # read back as claimed
    assert await store.claim([("m1", mail)], NOW + 29 * SECOND, LEASE) == [None]  # a competing replica backs off

    [taken] = await store.claim([("m1", mail)], NOW + 31 * SECOND, LEASE)  # the first sender crashed: lease ran out
    assert taken.id == first.id and taken.attempts == 2 and taken.possible_copy  # it may have sent
    assert await store.find_by_key("m1", mail) == taken and (await store.get(taken.id)).possible_copy is True

    await store.release(first, NOW + 31 * SECOND, "late")  # the first sender's claim is no longer its own
    assert await store.find_by_key("m1", mail) == taken
    await store.release(taken, NOW + 32 * SECOND, "SMTPServerDisconnected")  # transient: free to take at once
    released = await store.get(taken.id)
    assert (released.status, released.lease_until, released.updated_at) == (Status.retrying, None, NOW + 32 * SECOND)
    [again] = await store.claim([("m1", mail)], NOW + 33 * SECOND, LEASE)
    assert again.attempts == 3 and again.last_error == "SMTPServerDisconnected"

    assert not await store.finish(taken, Status.sent, None, None, NOW + 34 * SECOND)  # no longer that claim's
    assert await store.finish(again, Status.sent, None, None, NOW + 34 * SECOND)
    assert await store.finish(again, Status.sent, None, None, NOW + 34 * SECOND)  # a retry finds it written
    sent = await store.get(again.id)
    assert sent == replace(again, status=Status.sent, updated_at=NOW + 34 * SECOND, sent_at=NOW + 34 * SECOND,
                           lease_until=None, last_error=None)
    assert await store.claim([("m1", mail)], NOW + 1000 * SECOND, LEASE) == [None]  # sent is final
    [other] = await store.claim([("m2", mail)], NOW, LEASE)  # another message to the same person is its own mail
    assert other.id != first.id


async def test_a_permanent_failure_is_final_and_keeps_its_error(store):
    [mail] = plan(confirmed(address()))
    [claim] = await store.claim([("m1", mail)], NOW, LEASE)
    assert await store.finish(claim, Status.failed, None, "550 No such mailbox", NOW + SECOND)
    failed = await store.get(claim.id)
    assert (failed.status, failed.last_error, failed.sent_at) == (Status.failed, "550 No such mailbox", None)
    assert await store.claim([("m1", mail)], NOW + 1000 * SECOND, LEASE) == [None]


async def test_a_batch_of_claims_skips_mails_already_claimed_or_twice_in_it(store):
    [a], [b] = plan(confirmed(address())), plan(confirmed(address()))
    [sent] = await store.claim([("m1", a)], NOW, LEASE)
    await store.finish(sent, Status.sent, None, None, NOW)

    fresh, done, same, twice = await store.claim([("m2", a), ("m1", a), ("m1", b), ("m1", b)], NOW + SECOND, LEASE)
    assert fresh.message_id == "m2" and same.recipient == b.recipient
    assert done is None and twice is None  # sent already; the same mail earlier in the batch holds it
    assert len(await store.search({}, None, 10)) == 3


async def test_a_take_over_takes_only_its_own_record_among_other_free_ones(store):
    """nx-27017's findAndModify ignores filter conditions beside an `$or`: a take-over written that way took another
    mail's expired claim (issue 9). Two expired claims and a sent record: each claim takes exactly its own."""
    [other], [own], [done] = plan(confirmed(address())), plan(confirmed(address())), plan(confirmed(address()))
    [other_claim], [own_claim], [done_claim] = [await store.claim([(m, mail)], NOW, LEASE)
                                               for m, mail in (("m-other", other), ("m-own", own), ("m-done", done))]
    await store.finish(done_claim, Status.sent, None, None, NOW + SECOND)

    assert await store.claim([("m-done", done)], NOW + 60 * SECOND, LEASE) == [None]  # sent: nothing taken
    [taken] = await store.claim([("m-own", own)], NOW + 60 * SECOND, LEASE)  # both other claims have expired
    assert (taken.id, taken.recipient, taken.attempts) == (own_claim.id, own.recipient, 2)
    states = {r.message_id: (r.status, r.attempts) for r in await store.search({}, None, 10)}
    assert states == {"m-other": ("sending", 1), "m-own": ("sending", 2), "m-done": ("sent", 1)}
    assert other_claim.attempts == 1


async def test_the_audit_trail_is_newest_first_filtered_and_paged(store):
    kari, ola = address(), address()
    claims = await store.claim([(f"m{n}", mail) for n, to in enumerate([kari, ola, kari])
                                for mail in plan(confirmed(to))], NOW, LEASE)
    await store.finish(claims[0], Status.sent, None, None, NOW)

    assert [r.id for r in await store.search({}, None, 10)] == [c.id for c in reversed(claims)]
    assert [r.id for r in await store.search({"recipient": kari}, None, 10)] == [claims[2].id, claims[0].id]
    assert [r.id for r in await store.search({"recipient": kari, "status": "sent"}, None, 10)] == [claims[0].id]
    assert [r.id for r in await store.search({"kind": "confirmed"}, None, 2)] == [claims[2].id, claims[1].id]
    assert [r.id for r in await store.search({}, claims[1].id, 10)] == [claims[0].id]
    assert await store.get("0123456789abcdef01234567") is None and await store.get("not-an-id") is None


def attendee(registration_id: str, email: str, as_of: datetime, **changes) -> Attendee:
    return Attendee(**{"registration_id": registration_id, "event": event_info(), "email": email, "name": "Kari",
                       "language": Language.nn, "status": RegistrationStatus.confirmed, "manage_url": None,
                       "as_of": as_of, **changes})


async def test_erasure_anonymises_the_persons_records_and_forgets_the_rest_of_them(store):
    kari, ola = address(), address()
    [kari_claim, ola_claim] = await store.claim([("m1", *plan(confirmed(kari))), ("m1", *plan(confirmed(ola)))],
                                                NOW, LEASE)
    await store.remember_attendees([attendee("r1", kari, NOW), attendee("r2", ola, NOW)])
    await store.unsubscribe(Unsubscription(kari, Unsubscribe.reminder, NOW))

    assert await store.anonymise(kari) == 1
    erased = await store.get(kari_claim.id)
    assert kari not in erased.recipient and (erased.kind, erased.status) == (kari_claim.kind, kari_claim.status)
    assert await store.search({"recipient": kari}, None, 10) == []
    assert await store.get(ola_claim.id) == ola_claim
    assert [a.registration_id for a in await store.attendees_of(event_info().slug)] == ["r2"]
    assert not await store.is_unsubscribed(kari, Unsubscribe.reminder)


async def test_attendee_states_in_one_write_keep_the_newest_whatever_their_order(store):
    email = address()
    assert await store.remember_attendees([attendee("r1", email, NOW + 5 * SECOND)]) == [True]

    kept = await store.remember_attendees([
        attendee("r1", email, NOW + 3 * SECOND, status=RegistrationStatus.waitlisted),
        attendee("r2", email, NOW + 3 * SECOND, status=RegistrationStatus.pending_confirmation),
        attendee("r1", email, NOW + 7 * SECOND, status=RegistrationStatus.cancelled)])
    assert kept == [False, True, True]  # the state of time 3 arrived after that of time 5
    states = {a.registration_id: a.status for a in await store.attendees_of(event_info().slug)}
    assert states == {"r1": RegistrationStatus.cancelled, "r2": RegistrationStatus.pending_confirmation}


async def test_a_state_without_a_reminder_leaves_the_reminder_as_it_was(store):
    email, due = address(), NOW + 3600 * SECOND
    scheduled = attendee("r1", email, NOW, reminder=Reminder.scheduled, due=due)
    await store.remember_attendees([scheduled])
    assert await store.attendees_of(event_info().slug) == [scheduled]  # read back as written

    checked_in = attendee("r1", email, NOW + SECOND, status=RegistrationStatus.checked_in)
    await store.remember_attendees([checked_in])
    assert await store.attendees_of(event_info().slug) == [replace(checked_in, reminder=Reminder.scheduled, due=due)]


async def test_a_reminder_is_taken_once_when_due_and_again_only_when_its_lease_ran_out(store):
    soon, later = NOW + 60 * SECOND, NOW + 3600 * SECOND
    await store.remember_attendees([attendee("r1", address(), NOW, reminder=Reminder.scheduled, due=later),
                                    attendee("r2", address(), NOW, reminder=Reminder.scheduled, due=soon)])
    assert await store.take_due_reminder(NOW, LEASE) is None  # none due yet

    first = await store.take_due_reminder(later, LEASE)
    assert (first.registration_id, first.reminder, first.lease_until) == ("r2", Reminder.sending, later + LEASE)
    second = await store.take_due_reminder(later, LEASE)
    assert second.registration_id == "r1"
    assert await store.take_due_reminder(later, LEASE) is None  # both held

    await store.reminder_done("r1")
    retaken = await store.take_due_reminder(later + LEASE + SECOND, LEASE)  # r2's sweep died holding it
    assert retaken.registration_id == "r2"
    assert await store.take_due_reminder(later + LEASE + 2 * SECOND, LEASE) is None  # held again
    assert {a.registration_id: a.reminder for a in await store.attendees_of(event_info().slug)} == {
        "r1": Reminder.sent, "r2": Reminder.sending}


async def test_a_moved_event_schedules_its_reminders_again_and_a_cancelled_one_cancels_them(store):
    due, moved_due = NOW + 3600 * SECOND, NOW + 7200 * SECOND
    await store.remember_attendees([
        attendee("sent", address(), NOW, reminder=Reminder.scheduled, due=NOW),
        attendee("scheduled", address(), NOW, reminder=Reminder.scheduled, due=due),
        attendee("cancelled", address(), NOW, reminder=Reminder.cancelled),
        attendee("other", address(), NOW, event=event_info(slug="anna"), reminder=Reminder.scheduled, due=due)])
    sent = await store.take_due_reminder(NOW, LEASE)
    await store.reminder_done(sent.registration_id)

    moved = event_info(sequence=1, starts_at=event_info().starts_at + timedelta(hours=2))
    await store.move_reminders(moved, moved_due)
    await store.move_reminders(event_info(), NOW)  # an older version changes nothing
    reminders = {a.registration_id: (a.reminder, a.due, a.event.sequence)
                 for slug in ("innovasjonsjam-baerum", "anna") for a in await store.attendees_of(slug)}
    assert reminders == {"sent": (Reminder.scheduled, moved_due, 1), "scheduled": (Reminder.scheduled, moved_due, 1),
                         "cancelled": (Reminder.cancelled, None, 0), "other": (Reminder.scheduled, due, 0)}

    await store.cancel_reminders(moved.slug)
    assert {a.registration_id: a.reminder for a in await store.attendees_of(moved.slug)} == {
        "sent": Reminder.cancelled, "scheduled": Reminder.cancelled, "cancelled": Reminder.cancelled}
    assert (await store.take_due_reminder(NOW + 10_000 * SECOND, LEASE)).registration_id == "other"


async def test_an_unsubscription_is_per_address_and_topic_and_may_be_made_twice(store):
    kari = address()
    await store.unsubscribe(Unsubscription(kari, Unsubscribe.reminder, NOW))
    await store.unsubscribe(Unsubscription(kari, Unsubscribe.reminder, NOW + SECOND))  # the link clicked again
    assert await store.is_unsubscribed(kari, Unsubscribe.reminder)
    assert not await store.is_unsubscribed(address(), Unsubscribe.reminder)


async def test_indexes_of_an_earlier_version_that_no_query_uses_are_dropped(settings, mongo_url):
    client = AsyncMongoClient(mongo_url)
    store = Store(client[settings.db_name("notifications")])
    await store.notifications.create_index("kind")
    await store.notifications.create_index("status")
    await store.ensure_indexes()
    await store.ensure_indexes()  # again, with nothing left to drop
    keys = {tuple(index["key"]) async for index in await store.notifications.list_indexes()}
    assert {("recipient",), ("event_slug",)} <= keys and not keys & {("kind",), ("status",)}
    await client.close()
