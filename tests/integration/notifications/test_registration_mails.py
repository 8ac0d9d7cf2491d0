"""Issue 2: a registration message becomes exactly one mail, recorded in the service's own store."""

import aiohttp
import icalendar

from services.notifications.app import create_app
from shared.messages.registration import (
    RegistrationCancelled, RegistrationPromoted, RegistrationWaitlisted,
)

from .conftest import address, confirmed, eventually


def invitation(message: dict, raw: str) -> icalendar.Calendar:
    import email
    import email.policy
    parsed = email.message_from_string(raw, policy=email.policy.default)
    part = next(p for p in parsed.walk() if p.get_content_type() == "text/calendar")
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


async def test_confirmed_registration_gets_one_mail_with_invitation_and_cancel_link(
        settings, start_service, publish, mailbox, records, metrics_headers):
    base = await start_service(create_app, "notifications")
    to = address()
    data = confirmed(to)
    await publish(data)

    [mail] = await mailbox.wait_for(to)
    assert mail["Subject"] == "Du er påmeld: Innovasjonsjam i Bærum"
    assert "torsdag 4. mars 2027 kl. 10.00–16.00" in mail["Text"]  # 09:00 UTC is 10.00 in Oslo in March
    assert data.manage_url in mail["Text"]
    assert f'href="{data.manage_url}"' in mail["HTML"]
    cal = invitation(mail, await mailbox.raw(mail["ID"]))
    [entry] = cal.walk("VEVENT")
    assert cal["METHOD"] == "REQUEST"
    assert str(entry["UID"]) == f"{data.event.slug}.{data.registration_id}@moteplass.no"
    assert entry["SEQUENCE"] == 0
    assert entry.decoded("DTSTART") == data.event.starts_at

    record = await eventually(lambda: records.find_one({"recipient": to, "status": "sent"}))
    assert record["kind"] == "confirmed" and record["attempts"] == 1 and record["sent_ts"]
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics", headers=metrics_headers) as resp:
        assert 'notifications_mails_total{kind="confirmed",outcome="sent"}' in await resp.text()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as resp:
        assert resp.status == 200


async def test_waitlisted_promoted_and_cancelled_each_get_their_mail_in_the_recipients_language(
        settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    nb, en = address(), address()
    base = confirmed(nb, language="nb").model_dump()
    await publish(RegistrationWaitlisted(**{**base, "status": "waitlisted"}, position=3))
    await publish(RegistrationPromoted(**{**base, "status": "confirmed"}))
    await publish(RegistrationCancelled(**{**confirmed(en, language="en").model_dump(), "status": "cancelled"}))

    waitlisted = (await mailbox.wait_for(nb, subject_contains="venteliste"))[0]
    assert waitlisted["Subject"] == "Du står på venteliste: Innovasjonsjam i Bærum"
    assert "nummer 3 på ventelisten" in waitlisted["Text"]
    promoted = (await mailbox.wait_for(nb, subject_contains="fått plass"))[0]
    assert "Gode nyheter" in promoted["Text"]
    [cancelled] = await mailbox.wait_for(en)
    assert cancelled["Subject"] == "Your registration is cancelled: Innovasjonsjam i Bærum"
    assert invitation(cancelled, await mailbox.raw(cancelled["ID"]))["METHOD"] == "CANCEL"
