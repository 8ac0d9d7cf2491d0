"""Every link in every kind of mail, and every URL in every message on the bus, opens: none answers 404 or 5xx,
and every page among them passes axe-core (WCAG 2.1 AA). The services run with their default links (each service's
own public address), the mails go through the real broker to the mail sink."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urldefrag

import aiohttp
import pytest

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from shared.messages.notifications import NotificationKind
from tests.browser.system import address, create_event, links, participant, register, registration_app, urls_in
from tests.support.bus_tap import BusTap

MODERATOR = "moderator@example.no"


@pytest.fixture
async def tap(settings):
    async with BusTap(settings) as tap:
        yield tap


@pytest.fixture
async def services(start_service, settings, tap):
    urls = {"notifications": await start_service(notifications_app, "notifications"),
            "comments": await start_service(lambda s: comments_app(s, CommentsConfig(
                posts_per_minute=1000, moderators=[MODERATOR])), "comments"),
            "registration": await start_service(registration_app, "registration")}
    sessions = {name: aiohttp.ClientSession(url) for name, url in urls.items()}
    yield sessions
    for session in sessions.values():
        await session.close()


async def ok(response: aiohttp.ClientResponse, status: int = 200) -> dict:
    assert response.status == status, await response.text()
    return await response.json() if response.content_type == "application/json" else {}


async def mail_every_kind(services: dict, admin: dict, moderator: dict, mailbox) -> list[str]:
    """Cause one mail of every kind; returns the addresses they went to."""
    registration, comments = services["registration"], services["comments"]
    kari, ola, liv, per, guest, leila = (address(who) for who in ("kari", "ola", "liv", "per", "gjest", "leila"))
    # Starts in a day and a few seconds: the reminder (default: 24 hours before) is due in a few seconds.
    starts = datetime.now(UTC) + timedelta(hours=24, seconds=4)
    jam = await create_event(registration, admin, starts_at=starts.isoformat(),
                             ends_at=(starts + timedelta(hours=6)).isoformat())
    await register(registration, jam["slug"], participant(kari))  # confirmed
    await register(registration, jam["slug"], participant(ola, 2))  # waitlisted
    liv_id = (await register(registration, jam["slug"], participant(liv, 3)))["id"]  # waitlisted
    [kari_mail] = await mailbox.wait_for(kari)
    manage = next(link for link in links(kari_mail) if "/manage?" in link)
    async with aiohttp.ClientSession() as browser:
        await ok(await browser.post(manage.replace("/manage?", "/manage/guest?"), data={"email": guest}))
        async with registration.patch(f"/events/{jam['slug']}", json={"venue": "Sandvika kino"},
                                      headers=admin) as resp:
            await ok(resp)  # event_updated
        await ok(await browser.post(manage.replace("/manage?", "/manage/cancel?")))  # cancelled; ola promoted
        [*_, liv_mail] = await mailbox.wait_for(liv, count=2)  # waitlisted, event_updated
        liv_manage = next(link for link in links(liv_mail) if f"/registrations/{liv_id}/manage?" in link)
        await ok(await browser.post(liv_manage.replace("/manage?", "/manage/cancel?")))  # left the waiting list
    opt_in = await create_event(registration, admin, require_email_confirmation=True, capacity=5)
    await register(registration, opt_in["slug"], participant(per))  # confirm_email
    cancelled = await create_event(registration, admin, capacity=5)
    await register(registration, cancelled["slug"], participant(leila))
    await ok(await registration.post(f"/events/{cancelled['slug']}/cancel", headers=admin))  # event_cancelled

    thread = "/threads/innovasjonsjam/comments"
    top = await ok(await comments.post(thread, json={"author_name": "Kari", "email": kari, "notify_replies": True,
                                                     "body": "Takk for ein god møteplass!"}), 201)  # submitted
    await ok(await comments.post("/moderation/comments", json={"ids": [top["id"]], "action": "approve"},
                                 headers=moderator))
    reply = await ok(await comments.post(thread, json={"author_name": "Ola", "email": ola, "parent_id": top["id"],
                                                       "body": "Einig!"}), 201)
    await ok(await comments.post("/moderation/comments", json={"ids": [reply["id"]], "action": "approve"},
                                 headers=moderator))  # comment_published, to kari
    await ok(await comments.post("/erasure/requests", json={"email": ola, "language": "nb"}), 202)
    await ok(await comments.post("/staff/sign-in", data={"email": MODERATOR, "next": "/moderation"}))  # staff_sign_in
    return [kari, ola, liv, per, guest, leila, MODERATOR]


async def test_every_link_in_every_mail_and_message_opens(services, settings, admin_headers, moderator_headers,
                                                          mailbox, tap, page, axe):
    to = await mail_every_kind(services, admin_headers, moderator_headers, mailbox)
    notifications = services["notifications"]
    deadline = time.monotonic() + 30
    while True:  # until every kind has gone out (the reminder last)
        async with notifications.get("/notifications", params={"limit": "200"}, headers=admin_headers) as resp:
            sent = [n for n in (await ok(resp))["items"] if n["status"] == "sent"]
        if {n["kind"] for n in sent} == set(NotificationKind) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert {n["kind"] for n in sent} == set(NotificationKind)

    urls: set[str] = set()
    for recipient in to:
        for summary in await mailbox.messages_to(recipient):
            mail = await mailbox.message(summary["ID"])
            urls.update(links(mail))
            headers = await mailbox.headers(summary["ID"])
            urls.update(value.strip("<>") for value in headers.get("List-Unsubscribe", []))
    for message in tap.messages:
        urls.update(urls_in(message["data"]))
    urls = {urldefrag(url).url for url in urls}
    for kind in ("/manage?", "/manage/confirm?", "/register?invite=", "/register", "/comments/", "/unsubscribe?",
                 "/erasure/confirm?", "/moderation?", "/staff/sign-in/link?"):
        assert any(kind in url for url in urls), (kind, urls)

    opened = {}
    for url in sorted(urls):
        response = await page.goto(url)
        opened[url] = response.status
        if response.status < 500 and response.status != 404 and "text/html" in response.headers["content-type"]:
            await axe(page)
    assert {url: status for url, status in opened.items() if status == 404 or status >= 500} == {}
