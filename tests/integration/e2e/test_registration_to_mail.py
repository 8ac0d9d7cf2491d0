"""The walking skeleton end to end: HTTP → registration service → MongoDB → RabbitMQ → notifications → SMTP,
read back through the Mailpit-style API of the mail sink."""

import asyncio
import email
import email.policy
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import aiohttp
import icalendar
import pytest

from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from shared.bus import Bus
from shared.messages import make_event
from shared.messages.registration import EventInfo, RegistrationConfirmed


@pytest.fixture
async def system(start_service, settings, admin_headers):
    """Registration and notifications running against the test's own store, exchange and queues."""
    await start_service(notifications_app, "notifications")
    base = await start_service(registration_app, "registration")
    async with aiohttp.ClientSession(base) as http:
        yield http


async def create_event(http, admin_headers, capacity: int) -> str:
    slug = f"innovasjonsjam-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC) + timedelta(days=30)
    resp = await http.post("/events", headers=admin_headers, json={
        "slug": slug, "title": "Innovasjonsjam i Bærum", "kind": "jam", "venue": "Bærum rådhus, Sandvika",
        "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=6)).isoformat(),
        "capacity": capacity, "language": "nn"})
    assert resp.status == 201, await resp.text()
    return slug


def participant(email: str) -> dict:
    return {"name": "Kari Nordmann", "email": email, "organisation": "Sarpsborg kommune", "consent": True}


def address() -> str:
    return f"kari-{uuid.uuid4().hex[:10]}@example.no"


async def test_registration_mails_a_confirmation_whose_cancel_link_works(system, admin_headers, mailbox):
    slug = await create_event(system, admin_headers, capacity=90)
    email = address()
    resp = await system.post(f"/events/{slug}/registrations", json=participant(email))
    assert resp.status == 201, await resp.text()
    registration = await resp.json()
    assert registration["status"] == "confirmed"

    [confirmation] = await mailbox.wait_for(email)
    assert "Innovasjonsjam i Bærum" in confirmation["Subject"] + confirmation["Text"]
    links = re.findall(r"https?://\S+token=[\w-]+", confirmation["Text"])
    cancel_link = next(link for link in links if f"/registrations/{registration['id']}" in link)

    # What a mail client can do: open the link, then post the cancel step's form (the link's token authorises it).
    async with aiohttp.ClientSession() as browser:
        resp = await browser.get(cancel_link)
        assert resp.status == 200 and "/manage/cancel?token=" in await resp.text()
        resp = await browser.post(cancel_link.replace("/manage?", "/manage/cancel?"), allow_redirects=False)
        assert resp.status == 303, await resp.text()
    mails = await mailbox.wait_for(email, count=2)
    assert mails[1]["Subject"] != confirmation["Subject"]
    event = await (await system.get(f"/events/{slug}")).json()
    assert event["seats_left"] == 90


async def calendars(mailbox, mail: dict) -> list[icalendar.Calendar]:
    parsed = email.message_from_string(await mailbox.raw(mail["ID"]), policy=email.policy.default)
    return [icalendar.Calendar.from_ical(part.get_payload(decode=True))
            for part in parsed.walk() if part.get_content_type() == "text/calendar"]


async def test_cancelling_the_event_withdraws_the_calendar_entry_of_the_seat_holder_only(
        system, admin_headers, mailbox):
    slug = await create_event(system, admin_headers, capacity=1)
    seat, waiting = address(), address()
    for email_address, status in ((seat, "confirmed"), (waiting, "waitlisted")):
        resp = await system.post(f"/events/{slug}/registrations", json=participant(email_address))
        assert resp.status == 201 and (await resp.json())["status"] == status
    [confirmation] = await mailbox.wait_for(seat)
    [[invite]] = [c.walk("VEVENT") for c in await calendars(mailbox, confirmation)]
    await mailbox.wait_for(waiting)

    resp = await system.post(f"/events/{slug}/cancel", headers=admin_headers)
    assert resp.status == 200, await resp.text()
    [told_seat] = await mailbox.wait_for(seat, subject_contains="Avlyst")
    [told_waiting] = await mailbox.wait_for(waiting, subject_contains="Avlyst")
    [withdrawal] = await calendars(mailbox, told_seat)
    [entry] = withdrawal.walk("VEVENT")
    assert str(withdrawal["METHOD"]) == "CANCEL" and str(entry["UID"]) == str(invite["UID"])
    # The waiting list never had a calendar entry: the news, without one to withdraw.
    assert "avlyse" in told_waiting["Text"]
    assert await calendars(mailbox, told_waiting) == [] and told_waiting["Attachments"] == []


async def test_fifty_concurrent_registrations_for_ten_seats_fill_them_exactly_and_mail_everyone_once(
        system, admin_headers, mailbox):
    slug = await create_event(system, admin_headers, capacity=10)
    emails = [address() for _ in range(50)]
    responses = await asyncio.gather(
        *(system.post(f"/events/{slug}/registrations", json=participant(email)) for email in emails))
    bodies = [await resp.json() for resp in responses]
    assert [resp.status for resp in responses] == [201] * 50, bodies
    statuses = Counter(body["status"] for body in bodies)
    assert statuses == {"confirmed": 10, "waitlisted": 40}
    positions = sorted(body["position"] for body in bodies if body["status"] == "waitlisted")
    assert positions == list(range(1, 41))
    assert (await (await system.get(f"/events/{slug}")).json())["seats_left"] == 0

    for email in emails:
        await mailbox.wait_for(email)
    await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
    counts = Counter()
    for email in emails:
        counts[email] = len(await mailbox.messages_to(email))
    assert set(counts.values()) == {1}


async def test_the_same_message_delivered_twice_gives_one_mail(start_service, settings, mailbox):
    await start_service(notifications_app, "notifications")
    email = address()
    starts = datetime.now(UTC) + timedelta(days=3)
    payload = RegistrationConfirmed(
        event=EventInfo(slug="workshop-sarpsborg", title="Innovasjonsworkshop i Sarpsborg", venue="Sarpsborg",
                        starts_at=starts, ends_at=starts + timedelta(hours=4)),
        registration_id=uuid.uuid4().hex, name="Ola Nordmann", email=email, language="nn", status="confirmed",
        manage_url="http://127.0.0.1/registrations/x?token=t")
    event = make_event(payload, source="/moteplass/registration")
    bus = await Bus(settings, source="/tests").connect()
    try:
        await bus.publish(event)
        await bus.publish(event)  # at-least-once delivery: the same id again
        await mailbox.wait_for(email)
        await asyncio.sleep(0.5)
        assert len(await mailbox.messages_to(email)) == 1
    finally:
        await bus.close()
