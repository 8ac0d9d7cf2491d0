"""A commenter's pages, opened from their mail in a real Chromium: the comment in its thread, stopping reply mails
(RFC 8058 one-click: POST stops them; the page a GET shows changes nothing), erasing one's comments, and a wrong
link. Every page is checked with axe-core (WCAG 2.1 AA)."""

import asyncio

import aiohttp
import pytest

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from tests.browser.system import address, link_to

THREAD = "/threads/innovasjonsjam-baerum/comments"


@pytest.fixture
async def comments(start_service, settings):
    await start_service(notifications_app, "notifications")
    base = await start_service(lambda s: comments_app(s, CommentsConfig(posts_per_minute=1000)), "comments")
    async with aiohttp.ClientSession(base) as http:
        yield http


async def publish(http, moderator_headers, **body) -> str:
    async with http.post(THREAD, json={"author_name": "Kari Nordmann", "body": "Takk for ein god møteplass!",
                                       **body}) as resp:
        assert resp.status == 201, await resp.text()
        comment_id = (await resp.json())["id"]
    async with http.post("/moderation/comments", json={"ids": [comment_id], "action": "approve"},
                         headers=moderator_headers) as resp:
        assert resp.status == 200, await resp.text()
    return comment_id


async def test_a_reply_mail_opens_the_comment_and_stops_reply_mails_by_one_click(
        comments, moderator_headers, mailbox, page, axe):
    kari = address("kari")
    top = await publish(comments, moderator_headers, email=kari, notify_replies=True)
    await publish(comments, moderator_headers, author_name="Ola", email=address("ola"), parent_id=top,
                  body="Eg var einig, takk!")
    [reply_mail] = await mailbox.wait_for(kari)
    headers = await mailbox.headers(reply_mail["ID"])
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    unsubscribe = headers["List-Unsubscribe"][0].strip("<>")
    assert unsubscribe.startswith(f"{comments._base_url}/comments/{top}/unsubscribe?token=")  # this host

    await page.goto(link_to(reply_mail, "#kommentar-"))
    await page.get_by_text("Eg var einig, takk!").first.wait_for()
    assert await page.locator(".highlight").count() >= 1
    await axe(page)

    await page.goto(unsubscribe)  # a GET: the page asks, and nothing changes
    await page.get_by_role("button", name="Stopp e-postane").wait_for()
    await axe(page)
    await publish(comments, moderator_headers, author_name="Per", email=address("per"), parent_id=top,
                  body="Og eg!")
    await mailbox.wait_for(kari, count=2)

    async with aiohttp.ClientSession() as mail_client:  # what the mail client does on "unsubscribe"
        async with mail_client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
            assert resp.status == 200
    await publish(comments, moderator_headers, author_name="Liv", email=address("liv"), parent_id=top,
                  body="Eitt svar til")
    await mailbox.wait_for(address("nobody"), count=0)
    await asyncio.sleep(1)  # room for a mail that should not come
    assert len(await mailbox.messages_to(kari)) == 2

    await page.goto(unsubscribe.replace("token=", "token=x"))
    await page.get_by_role("heading", name="Lenkja er ikkje gyldig.").wait_for()
    await axe(page)


async def test_erase_my_comments_from_the_mailed_link(comments, moderator_headers, mailbox, page, axe):
    kari = address("kari")
    await publish(comments, moderator_headers, email=kari)
    async with comments.post("/erasure/requests", json={"email": kari, "language": "en"}) as resp:
        assert resp.status == 202
    [mail] = await mailbox.wait_for(kari)
    await page.goto(link_to(mail, "/erasure/confirm?"))
    assert await page.get_attribute("html", "lang") == "en"
    await axe(page)
    await page.get_by_role("button", name="Erase my name and email address").click()
    await page.get_by_text("1 comments are now anonymised.").wait_for()
    await axe(page)
    async with comments.get(THREAD) as resp:
        assert (await resp.json())["comments"][0]["author_name"] == "Anonym"
