"""A participant's pages, opened from their mail in a real Chromium: manage (answers, guest, cancel with its
confirmation step), confirm an email, register as an invited guest, erase, and a wrong link. Every page and state
is checked with axe-core (WCAG 2.1 AA)."""

import os
from urllib.parse import urljoin

import aiohttp
import icalendar
import pytest

from services.notifications.app import create_app as notifications_app
from tests.browser.system import address, create_event, link_to, participant, register, registration_app


@pytest.fixture
async def system(start_service, settings):
    await start_service(notifications_app, "notifications")
    base = await start_service(registration_app, "registration")
    async with aiohttp.ClientSession(base) as http:
        yield http


async def test_manage_from_the_mail_change_answer_invite_guest_cancel_and_the_next_is_promoted(
        system, admin_headers, mailbox, page, axe):
    event = await create_event(system, admin_headers)
    kari, ola = address("kari"), address("ola")
    registration = await register(system, event["slug"], participant(kari))
    assert (await register(system, event["slug"], participant(ola, 2)))["status"] == "waitlisted"
    [confirmation] = await mailbox.wait_for(kari)

    await page.goto(link_to(confirmation, "/manage?"))
    assert await page.get_attribute("html", "lang") == "nn"
    await page.get_by_text("Du har plass på møteplassen.").wait_for()
    await axe(page)
    if folder := os.environ.get("SCREENSHOTS"):  # SCREENSHOTS=docs/img renews the README's picture
        await page.screenshot(path=f"{folder}/manage.png", full_page=True)

    # The calendar file is the invitation's own entry (same UID), the data download everything kept about Kari.
    async with aiohttp.ClientSession() as http:
        ics = await page.get_by_role("link", name="Legg møteplassen i kalenderen din").get_attribute("href")
        async with http.get(urljoin(page.url, ics)) as resp:
            [entry] = icalendar.Calendar.from_ical(await resp.read()).walk("VEVENT")
        assert str(entry["UID"]) == f"{event['slug']}.{registration['id']}@moteplass.no"
        assert str(entry["LOCATION"]) == "Bærum kulturhus, Sandvika"
        data = await page.get_by_role("link", name="Last ned opplysningane dine").get_attribute("href")
        async with http.get(urljoin(page.url, data)) as resp:
            assert resp.status == 200 and (await resp.json())["email"] == kari

    await page.get_by_label("Treng du spesialkost?").select_option("Vegetar")
    await page.get_by_role("button", name="Lagre svara").click()
    await page.get_by_text("Svara dine er lagra.").wait_for()
    assert await page.get_by_label("Treng du spesialkost?").input_value() == "Vegetar"
    await axe(page)

    # A wrong address: the error summary names it and links to the field, which says what is wrong.
    await page.get_by_label("E-postadressa til gjesten").fill("ikkje-ei-adresse")
    await page.get_by_role("button", name="Send invitasjonen").click()
    summary = page.locator(".error-summary")
    await summary.wait_for()
    assert await page.evaluate("document.activeElement.id") == "error-summary"
    await axe(page)
    await summary.get_by_role("link").click()
    assert await page.evaluate("document.activeElement.id") == "f-email"
    assert await page.get_attribute("#f-email", "aria-invalid") == "true"

    guest = address("gjest").replace("baerum.kommune.no", "example.no")
    await page.get_by_label("E-postadressa til gjesten").fill(guest)
    await page.get_by_role("button", name="Send invitasjonen").click()
    await page.get_by_text("Gjesten er invitert").wait_for()
    [invitation] = await mailbox.wait_for(guest)
    assert "/events/" in link_to(invitation, "invite=")

    # Cancel with the keyboard alone: to the confirmation step, then Tab to its button and Enter.
    await page.get_by_role("link", name="Eg vil melde meg av").focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Meld deg av").wait_for()
    await axe(page)
    button = page.get_by_role("button", name="Ja, meld meg av")
    for _ in range(10):
        if await button.evaluate("b => b === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    assert await button.evaluate("b => b === document.activeElement"), "Tab never reached the cancel button"
    outline = await button.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline not in ("", "none"), "the focused button shows no focus"
    await page.keyboard.press("Enter")
    await page.get_by_text("Du er meld av.").wait_for()
    await axe(page)

    [_, cancelled] = await mailbox.wait_for(kari, count=2)
    assert "avmeld" in cancelled["Subject"].lower() or "avmeld" in cancelled["Text"].lower(), cancelled["Subject"]
    [_, promoted] = await mailbox.wait_for(ola, count=2)
    await page.goto(link_to(promoted, "/manage?"))
    await page.get_by_text("Du har plass på møteplassen.").wait_for()


async def test_register_on_the_page_with_errors_then_confirm_the_email(system, admin_headers, mailbox, page, axe):
    event = await create_event(system, admin_headers, require_email_confirmation=True, capacity=10)
    await page.goto(f"{system._base_url}/events/{event['slug']}/register")
    await axe(page)
    await page.get_by_role("button", name="Meld meg på").click()
    await page.locator(".error-summary").wait_for()
    await axe(page)
    summary = await page.locator(".error-summary").inner_text()
    for label in ("Namn:", "E-postadresse:", "Organisasjon:", "Samtykke:"):  # each entry names its field
        assert label in summary, summary
    email = address("per")
    await page.get_by_label("Namn").fill("Per Hansen")
    await page.get_by_label("E-postadresse").fill(email)
    await page.get_by_role("textbox", name="Organisasjon", exact=True).fill("Digdir")
    await page.get_by_label("Treng du spesialkost?").select_option("Nei")
    await page.get_by_label("Eg samtykkjer").check()
    await page.get_by_role("button", name="Meld meg på").click()
    await page.get_by_role("heading", name="Takk for påmeldinga").wait_for()
    await axe(page)

    [mail] = await mailbox.wait_for(email)
    confirm = link_to(mail, "/manage/confirm?")
    await page.goto(confirm)
    await axe(page)
    await page.get_by_role("button", name="Stadfest påmeldinga").click()
    await page.get_by_text("E-postadressa di er stadfesta.").wait_for()
    await page.get_by_text("Du har plass på møteplassen.").wait_for()
    await axe(page)


async def test_a_guest_registers_from_the_invitation_in_english(system, admin_headers, mailbox, page, axe):
    event = await create_event(system, admin_headers, capacity=10)
    inviter = await register(system, event["slug"], participant(address(), language="en"))
    [mail] = await mailbox.wait_for(inviter["email"])
    guest = address("guest").replace("baerum.kommune.no", "example.com")
    async with aiohttp.ClientSession() as http:
        manage = link_to(mail, "/manage?")
        async with http.post(manage.replace("/manage?", "/manage/guest?"), data={"email": guest}) as resp:
            assert resp.status == 200 and "Your guest is invited" in await resp.text()
    [invitation] = await mailbox.wait_for(guest)
    await page.goto(link_to(invitation, "invite="))
    assert await page.get_attribute("html", "lang") == "en"
    await axe(page)
    await page.get_by_label("Name").fill("Guest Person")
    await page.get_by_label("Email address").fill(guest)
    await page.get_by_role("textbox", name="Organisation", exact=True).fill("Social entrepreneurs AS")
    await page.get_by_label("I agree").check()
    await page.get_by_role("button", name="Register me").click()
    await page.get_by_text("You have a seat at the event.").wait_for()
    await axe(page)


async def test_erase_my_data_then_the_link_explains_itself(system, admin_headers, mailbox, page, axe):
    event = await create_event(system, admin_headers)
    email = address()
    await register(system, event["slug"], participant(email))
    [mail] = await mailbox.wait_for(email)
    manage = link_to(mail, "/manage?")
    await page.goto(manage)
    await page.get_by_role("link", name="Slett opplysningane dine").click()
    await axe(page)
    await page.get_by_role("button", name="Ja, slett opplysningane mine").click()
    await page.get_by_role("heading", name="Opplysningane dine er sletta").wait_for()
    await axe(page)

    response = await page.goto(manage)
    assert response.status == 404
    await page.get_by_role("heading", name="Lenkja er ikkje gyldig.").wait_for()
    await axe(page)
