"""The seed's page, rebuilt from the widgets (the demo page of `make run`), in a real Chromium, and the staff
pages: register in the widget and the mail arrives; the waiting list; the service's messages per field; a comment
waits for a moderator, who signs in by the mailed link and approves it; a reply mails the parent's author; the door
page on a phone. No request leaves for a third party; axe-core finds nothing in any state; keyboard only where a
person would type."""

import re
import uuid

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from moteplass import demo_page
from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from services.registration.cli import seed_events
from shared.auth import Role, issue_token
from tests.conftest import free_port
from tests.support.browser import assert_accessible, checked_page

MODERATOR = "moderator@example.no"


def moderator_headers(demo: dict) -> dict:
    return {"Authorization": f"Bearer {issue_token(demo['settings'], Role.moderator)}"}


@pytest.fixture
def tolerated_errors() -> re.Pattern:
    # The widgets' own refusals (a 422 with messages per field, a 409) are answers they show, not failures; every
    # other failed load, console error or uncaught exception still fails the test.
    return re.compile(r"^fetch \S+ answered 4(09|22)$")


@pytest.fixture
async def demo(start_service, settings, admin_headers):
    """The three services, allowing the demo page's origin, and the demo page; the seed's møteplassar created
    (the workshop with one seat, so that a second person meets the waiting list). Yields the page's URL."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    allowed = settings.model_copy(update={"cors_origins": [origin], "admins": [MODERATOR]})
    await start_service(notifications_app, "notifications", app_settings=allowed)
    registration = await start_service(registration_app, "registration", app_settings=allowed)
    comments = await start_service(lambda s: comments_app(s, CommentsConfig(posts_per_minute=1000)), "comments",
                                   app_settings=allowed)
    async with aiohttp.ClientSession(registration, headers=admin_headers) as http:
        for event in seed_events():
            body = event.model_dump(mode="json")
            if event.slug == "innovasjonsworkshop-sarpsborg":
                body["capacity"] = 1
            assert (await http.post("/events", json=body)).status == 201
        resp = await http.post("/events/innovasjonsworkshop-sarpsborg/registrations", json={
            "name": "Kari Berg", "email": "kari.berg@sarpsborg.example.no", "organisation": "Sarpsborg kommune",
            "organisation_type": "kommune", "municipality": {"number": "3105", "name": "Sarpsborg"},
            "answers": {"diett": "nei"}, "consent": True})
        assert resp.status == 201, await resp.text()
    server = TestServer(demo_page.app(registration, comments), host="127.0.0.1", port=port)
    await server.start_server()
    yield {"url": f"{origin}/", "registration": registration, "comments": comments, "settings": allowed}
    await server.close()


async def only_our_services(page: Page, demo: dict) -> list[str]:
    """Every request the page makes, recorded; the test asserts none went elsewhere."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return requests


async def test_register_in_the_widget_and_the_confirmation_mail_arrives(page, axe, demo, mailbox):
    requests = await only_our_services(page, demo)
    await page.goto(demo["url"])
    jam = page.locator('moteplass-registration[event="innovasjonsjam-baerum"]')
    await expect(jam.get_by_text("90 av 90 plassar er ledige.")).to_be_visible()
    await expect(jam.get_by_text("* obligatorisk felt")).to_be_visible()
    await expect(jam.get_by_text("éin person frå sitt eige nettverk")).to_be_visible()
    await axe(page)  # empty

    # Sent empty, by the keyboard alone: the service's message per field, in a summary linked to each field.
    await jam.get_by_role("button", name="Meld på").press("Enter")
    summary = jam.locator(".mp-summary")
    await expect(summary).to_be_focused()
    await expect(summary.get_by_role("link")).to_have_text(
        ["Feltet er obligatorisk.", "Feltet er obligatorisk.", "Feltet er obligatorisk.",
         "Du må samtykkje til at vi lagrar opplysningane dine."])
    name = jam.get_by_label("Namn *")
    await expect(name).to_have_attribute("aria-invalid", "true")
    await axe(page)  # errors
    await summary.get_by_role("link").first.press("Enter")
    await expect(name).to_be_focused()

    email = f"kari-{uuid.uuid4().hex[:8]}@baerum.example.no"
    await name.fill("Kari Nordmann")
    await jam.get_by_label("E-postadresse *").fill(email)
    await jam.get_by_label("Arbeidsstad eller organisasjon *").fill("Bærum kommune")
    await jam.get_by_label("Kva slags organisasjon?").select_option("kommune")
    await jam.get_by_label("Kommunenummer *").fill("3201")
    await jam.get_by_label("Kommune *", exact=True).fill("Bærum")
    await jam.get_by_label("Kva problemstilling vil du ta opp?").fill("Tenestedesign i små einingar")
    await jam.get_by_label("Eg samtykkjer").press("Space")
    await axe(page)  # filled
    await jam.get_by_role("button", name="Meld på").press("Enter")
    await expect(jam.get_by_role("status")).to_have_text("Du er påmeld! Stadfestinga kjem på e-post.")
    await expect(jam.get_by_text("89 av 90 plassar er ledige.")).to_be_visible()
    await axe(page)  # success

    [mail] = await mailbox.wait_for(email)
    assert "Innovasjonsjam" in mail["Subject"]
    ours = (demo["url"], demo["registration"], demo["comments"])
    assert [url for url in requests if not url.startswith(ours)] == []


async def test_a_full_moteplass_offers_its_waiting_list(page, axe, demo):
    await page.goto(demo["url"])
    workshop = page.locator('moteplass-registration[event="innovasjonsworkshop-sarpsborg"]')
    await expect(workshop.get_by_text("Det er fullt. Meld deg på venteliste")).to_be_visible()
    await axe(page)  # waiting list
    await workshop.get_by_label("Namn *").fill("Nils Johansen")
    await workshop.get_by_label("E-postadresse *").fill(f"nils-{uuid.uuid4().hex[:8]}@fredrikstad.example.no")
    await workshop.get_by_label("Arbeidsstad eller organisasjon *").fill("Fredrikstad kommune")
    await workshop.get_by_label("vegetar").check()
    await workshop.get_by_label("Eg samtykkjer").check()
    await workshop.get_by_role("button", name="Meld på venteliste").click()
    await expect(workshop.get_by_role("status")).to_have_text(
        "Du står på venteliste som nummer 1. Du får e-post når du får plass.")
    await axe(page)


async def sign_in(page: Page, base: str, path: str, mailbox) -> None:
    axe = assert_accessible
    """Open a staff page, be sent to sign in, ask for the link, open it from the mail, press the button."""
    await page.goto(base + path)
    await expect(page.get_by_role("heading", name="Logg inn")).to_be_visible()
    await axe(page)
    await page.get_by_label("E-postadresse").fill(MODERATOR)
    await page.get_by_label("E-postadresse").press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("Står moderator@example.no på lista")
    await axe(page)
    mails = await mailbox.wait_for(MODERATOR, subject_contains="Logg inn")
    link = re.search(r"(http://\S+/staff/sign-in/link\?token=\S+)", mails[-1]["Text"]).group(1)
    assert link.startswith(base)
    await mailbox.delete_all()
    await page.goto(link)
    await axe(page)
    await page.get_by_role("button", name="Logg inn").press("Enter")
    await expect(page).to_have_url(base + path)


async def test_a_comment_waits_for_a_moderator_who_signs_in_by_the_mailed_link_and_approves_it(
        page, browser, axe, demo, mailbox):
    author = f"ola-{uuid.uuid4().hex[:8]}@example.no"
    await page.goto(demo["url"])
    thread = page.locator("moteplass-comments")
    await expect(thread.get_by_role("heading", name="Kommentarar (0)")).to_be_visible()
    await expect(thread.get_by_text("Ingen kommentarar enno.")).to_be_visible()
    await axe(page)

    send = thread.get_by_role("button", name="Send kommentar")
    await send.press("Enter")
    await expect(thread.locator(".mp-summary")).to_be_focused()
    await expect(thread.get_by_label("Kommentar *")).to_have_attribute("aria-invalid", "true")
    await axe(page)

    await thread.get_by_label("Namn *").fill("Ola Nordmann")
    await thread.get_by_label("E-postadresse *").fill(author)
    await thread.get_by_label("Kommentar *").fill("Open Space fungerte godt hos oss i Asker.")
    await thread.get_by_label("Send meg e-post når nokon svarar").press("Space")
    await send.press("Enter")
    await expect(thread.get_by_role("status")).to_have_text(
        "Takk! Kommentaren blir synleg når ein moderator har godkjent han.")
    await axe(page)

    async with checked_page(browser) as staff:
        await sign_in(staff, demo["comments"], "/moderation", mailbox)
        await expect(staff.get_by_text("Open Space fungerte godt hos oss i Asker.")).to_be_visible()
        await axe(staff)
        await staff.get_by_role("checkbox", name="Ola Nordmann").press("Space")
        await staff.get_by_role("button", name="Godkjenn").press("Enter")
        await expect(staff.get_by_role("status")).to_have_text("1 godkjende.")
        await axe(staff)

    await page.reload()
    await expect(thread.get_by_role("heading", name="Kommentarar (1)")).to_be_visible()
    comment = thread.get_by_role("article", name=re.compile("^Ola Nordmann"))
    await expect(comment).to_contain_text("Open Space fungerte godt hos oss i Asker.")
    await axe(page)

    # A reply, by the keyboard: once approved, the parent's author (who asked for it) gets a mail.
    await comment.get_by_role("button", name="Svar på kommentaren frå Ola Nordmann").press("Enter")
    reply = comment.locator("form")
    await expect(reply.get_by_label("Svar til Ola Nordmann *")).to_be_focused()
    await reply.get_by_label("Namn *").fill("Kari Berg")
    await reply.get_by_label("E-postadresse *").fill("kari.berg@sarpsborg.example.no")
    await reply.get_by_label("Svar til Ola Nordmann *").fill("Same her i Sarpsborg!")
    await axe(page)
    await reply.get_by_role("button", name="Send svar").press("Enter")
    await expect(thread.get_by_role("status")).to_have_text(
        "Takk! Kommentaren blir synleg når ein moderator har godkjent han.")
    async with aiohttp.ClientSession(demo["comments"], headers=moderator_headers(demo)) as http:
        queue = await (await http.get("/moderation/comments")).json()
        [pending] = queue["comments"]
        assert (await http.post("/moderation/comments", json={"ids": [pending["id"]], "action": "approve"})).ok
    [mail] = await mailbox.wait_for(author, subject_contains="svart")
    assert "Kari Berg" in mail["Subject"]


async def test_the_door_page_on_a_phone(browser, axe, demo, mailbox):
    async with checked_page(browser, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True) as page:
        await sign_in(page, demo["registration"], "/door/innovasjonsworkshop-sarpsborg", mailbox)
        checked_in = page.locator("dt:text-is('Sjekka inn') + dd")
        await expect(checked_in).to_have_text("0 av 1")
        await page.get_by_label("Namn").fill("kari")
        await page.get_by_label("Namn").press("Enter")
        await expect(page.get_by_text("1 treff på «kari».")).to_be_visible()
        await axe(page)
        await page.get_by_role("button", name="Sjekk inn Kari Berg").press("Enter")
        await expect(page.get_by_role("status")).to_have_text("Kari Berg er sjekka inn.")
        await expect(checked_in).to_have_text("1 av 1")
        await axe(page)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
