"""Issue 5, mail kinds beyond the registration basics: changes to a møteplass, reminders with one-click
unsubscribe, guest invites, double opt-in and comment notices, each in the recipient's language."""

import email
import email.policy
from datetime import UTC, datetime, timedelta

import aiohttp
import icalendar

from services.notifications.app import create_app
from shared.messages.comments import CommentErasureRequested, CommentPublished, CommentSubmitted, ParentComment
from shared.messages.registration import (
    EventUpdated, GuestInvited, RegistrationCancelled, RegistrationPending,
)

from .conftest import address, confirmed, event_info, eventually


async def calendar(mailbox, mail: dict) -> icalendar.Calendar:
    parsed = email.message_from_string(await mailbox.raw(mail["ID"]), policy=email.policy.default)
    [part] = [p for p in parsed.walk() if p.get_content_type() == "text/calendar"]
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


async def test_a_moved_event_sends_an_updated_invite_and_a_cancelled_one_withdraws_it(
        settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    seat, waiting = address(), address()
    first = confirmed(seat)
    await publish(first)
    await publish(confirmed(waiting, language="en", status="waitlisted"))
    await mailbox.wait_for(seat)

    moved = event_info(sequence=1, starts_at=datetime(2027, 3, 11, 9, tzinfo=UTC),
                       ends_at=datetime(2027, 3, 11, 12, tzinfo=UTC), venue="Sandvika storsenter")
    await publish(EventUpdated(event=moved, changed=["starts_at", "venue"],
                               previous_starts_at=first.event.starts_at))
    [update] = await mailbox.wait_for(seat, subject_contains="Endra tid eller stad")
    assert "torsdag 11. mars 2027 kl. 10.00–13.00" in update["Text"] and "Sandvika storsenter" in update["Text"]
    assert "torsdag 4. mars 2027 kl. 10.00" in update["Text"]  # what it was
    [old], [new] = (await calendar(mailbox, (await mailbox.wait_for(seat))[0])).walk("VEVENT"), \
        (await calendar(mailbox, update)).walk("VEVENT")
    assert str(new["UID"]) == str(old["UID"]) and new["SEQUENCE"] == 1 > old["SEQUENCE"]
    [told] = await mailbox.wait_for(waiting, subject_contains="Time or place changed")
    assert told["Attachments"] == []  # the waiting list gets the news but no calendar entry

    await publish(RegistrationCancelled(**{**first.model_dump(), "event": moved, "status": "cancelled",
                                           "reason": "event_cancelled"}))
    [cancelled] = await mailbox.wait_for(seat, subject_contains="Avlyst")
    cal = await calendar(mailbox, cancelled)
    [entry] = cal.walk("VEVENT")
    assert str(cal["METHOD"]) == "CANCEL" and str(entry["UID"]) == str(old["UID"])


async def test_a_reminder_fires_once_before_the_event_and_can_be_turned_off_with_one_click(
        settings, start_service, publish, mailbox, records):
    soon = settings.model_copy(update={"reminder_hours_before": 2 - 1 / 3600})  # due one second from now
    base = await start_service(create_app, "notifications", app_settings=soon)
    starts = datetime.now(UTC) + timedelta(hours=2)
    to = address()
    event = event_info(starts_at=starts, ends_at=starts + timedelta(hours=1))
    await publish(confirmed(to, event=event, language="nb"))
    [reminder] = await mailbox.wait_for(to, subject_contains="Påminnelse")
    headers = await mailbox.headers(reminder["ID"])
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    link = headers["List-Unsubscribe"][0].strip("<>")
    assert link.startswith(f"{settings.notifications_public_url}/unsubscribe?token=")
    assert link in reminder["Text"]

    local = link.replace(settings.notifications_public_url, base)
    async with aiohttp.ClientSession() as http:
        async with http.get(local) as resp:  # opening the link asks first
            assert resp.status == 200 and "Meld meg av" in await resp.text()
        async with http.post(local, data="List-Unsubscribe=One-Click") as resp:
            assert resp.status == 200 and "Du er nå meldt av" in await resp.text()
        async with http.post(local.replace("token=", "token=x")) as resp:
            assert resp.status == 400

    starts = datetime.now(UTC) + timedelta(hours=2)
    await publish(confirmed(to, event=event_info(slug="neste", starts_at=starts, ends_at=starts + timedelta(hours=1))))
    await eventually(lambda: records.find_one({"recipient": to, "kind": "reminder", "status": "unsubscribed"}))
    assert len(await mailbox.messages_to(to)) == 3  # two confirmations and the one reminder
    assert await records.count_documents({"kind": "reminder", "status": "sent"}) == 1


async def test_guest_invite_and_email_confirmation_carry_their_links(settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    guest, person = address(), address()
    await publish(GuestInvited(event=event_info(), registration_id="r1", inviter_name="Kari Nordmann",
                               municipality="Bærum", guest_email=guest, language="nn",
                               invite_url="https://moteplass.example.no/invitasjon?token=abc"))
    await publish(RegistrationPending(**{**confirmed(person, language="en").model_dump(),
                                         "status": "pending_confirmation"},
                                      confirm_url="https://moteplass.example.no/confirm?token=xyz",
                                      expires_at=datetime(2027, 1, 5, 23, 0, tzinfo=UTC)))
    [invite] = await mailbox.wait_for(guest)
    assert invite["Subject"] == "Kari Nordmann inviterer deg til Innovasjonsjam i Bærum"
    assert "https://moteplass.example.no/invitasjon?token=abc" in invite["Text"]
    [confirm] = await mailbox.wait_for(person)
    assert confirm["Subject"] == "Confirm your email address: Innovasjonsjam i Bærum"
    assert "valid until Wednesday 6 January 2027, 00:00" in confirm["Text"]
    assert 'href="https://moteplass.example.no/confirm?token=xyz"' in confirm["HTML"]


COMMENT = {"thread_id": "innovasjonsjam-baerum", "comment_id": "c2", "author_name": "Ola <b>Nordmann</b>",
           "excerpt": "Kjempegod idé & godt forklart", "url": "https://moteplass.example.no/jam#c2"}


async def test_comments_tell_the_moderators_and_the_opted_in_parent_author(settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    moderator, author = address(), address()
    await publish(CommentSubmitted(**COMMENT, status="pending", moderation_url="https://moteplass.example.no/mod",
                                   moderator_emails=[moderator]))
    parent = ParentComment(comment_id="c1", author_name="Kari", language="nb", email=author,
                           unsubscribe_url="https://moteplass.example.no/comments/c1/unsubscribe?token=u")
    await publish(CommentPublished(**COMMENT, status="approved", parent=parent))

    [notice] = await mailbox.wait_for(moderator)
    assert notice["Subject"] == "Ny kommentar ventar på godkjenning"
    assert "https://moteplass.example.no/mod" in notice["Text"]
    assert "Ola &lt;b&gt;Nordmann&lt;/b&gt;" in notice["HTML"] and "&amp; godt forklart" in notice["HTML"]
    [reply] = await mailbox.wait_for(author)
    assert reply["Subject"] == "Ola <b>Nordmann</b> har svart på kommentaren din"
    headers = await mailbox.headers(reply["ID"])
    assert headers["List-Unsubscribe"] == ["<https://moteplass.example.no/comments/c1/unsubscribe?token=u>"]


async def test_an_erasure_request_mails_its_signed_link(settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    to = address()
    await publish(CommentErasureRequested(email=to, language="nb", comment_count=2,
                                          erase_url="https://moteplass.example.no/comments/erase?token=s",
                                          expires_at=datetime(2027, 1, 5, 12, 0, tzinfo=UTC)))
    [mail] = await mailbox.wait_for(to)
    assert mail["Subject"] == "Slett kommentarene dine"
    assert "de 2 kommentarene" in mail["Text"] and "tirsdag 5. januar 2027 kl. 13.00" in mail["Text"]
    assert 'href="https://moteplass.example.no/comments/erase?token=s"' in mail["HTML"]


async def test_a_confirmation_arriving_after_the_cancellation_schedules_no_reminder(
        settings, start_service, publish, mailbox, records):
    from shared.messages import make_event

    await start_service(create_app, "notifications")
    to = address()
    registration = confirmed(to)
    now = datetime.now(UTC)
    late = make_event(registration, source="/moteplass/registration").model_copy(update={"time": now})
    cancelled = make_event(RegistrationCancelled(**{**registration.model_dump(), "status": "cancelled"}),
                           source="/moteplass/registration").model_copy(update={"time": now + timedelta(seconds=1)})
    await publish(cancelled)
    await mailbox.wait_for(to)
    await publish(late)  # e.g. it waited in a retry queue
    await mailbox.wait_for(to, count=2)
    db = records.database
    attendee = await eventually(lambda: db["attendees"].find_one({"_id": registration.registration_id}))
    assert attendee["status"] == "cancelled" and attendee["reminder"] == "cancelled"
