"""Issue 10, item 4: addresses with Norwegian letters get their mail (the domain IDNA-encoded; a local part with
æ, ø or å over SMTPUTF8), or — where the mail server takes no SMTPUTF8 — are refused at registration (422), never
parked later. From outside: HTTP and the mail sink's API."""

import uuid

import aiohttp

from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app

from .test_registration_to_mail import create_event, participant


async def test_addresses_with_norwegian_letters_get_their_confirmation(start_service, admin_headers, mailbox):
    await start_service(notifications_app, "notifications")
    base = await start_service(registration_app, "registration")
    tag = uuid.uuid4().hex[:8]
    idn_domain, idn_everywhere = f"kari-{tag}@bærum.no", f"ærlig-{tag}@bærum.no"
    async with aiohttp.ClientSession(base) as http:
        slug = await create_event(http, admin_headers, capacity=10)
        for email in (idn_domain, idn_everywhere):
            async with http.post(f"/events/{slug}/registrations", json=participant(email)) as resp:
                assert resp.status == 201, await resp.text()
                assert (await resp.json())["email"] == email

    # The domain as the mail system writes it (IDNA); the local part as the person wrote it (SMTPUTF8).
    [plain] = await mailbox.wait_for(f"kari-{tag}@xn--brum-voa.no")
    [utf8] = await mailbox.wait_for(f"ærlig-{tag}@xn--brum-voa.no")
    for mail in (plain, utf8):
        assert mail["Subject"] == "Du er påmeld: Innovasjonsjam i Bærum" and mail["To"][0]["Name"] == "Kari Nordmann"
        assert "/registrations/" in mail["Text"]


async def test_a_local_part_the_mail_server_cannot_take_is_refused_at_registration(
        settings, start_service, admin_headers, mailbox):
    no_utf8 = settings.model_copy(update={"smtp_utf8": False})
    await start_service(notifications_app, "notifications", app_settings=no_utf8)
    base = await start_service(registration_app, "registration", app_settings=no_utf8)
    tag = uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession(base) as http:
        slug = await create_event(http, admin_headers, capacity=10)
        async with http.post(f"/events/{slug}/registrations", json=participant(f"ærlig-{tag}@bærum.no")) as resp:
            assert resp.status == 422
            [problem] = (await resp.json())["error"]["details"]
        assert problem["field"] == "email" and problem["type"] == "email_smtputf8"
        assert "Bruk ei anna e-postadresse" in problem["message"]
        async with http.get(f"/events/{slug}/registrations", headers=admin_headers) as resp:
            assert resp.status == 200 and (await resp.json())["items"] == []  # nothing written
        async with http.post(f"/events/{slug}/registrations", json=participant(f"kari-{tag}@bærum.no")) as resp:
            assert resp.status == 201  # an IDN domain alone needs no SMTPUTF8
    await mailbox.wait_for(f"kari-{tag}@xn--brum-voa.no")
