"""Admins sign in by a mailed link (no password) and work the door page: find a participant, check in, counts,
CSV. The session is an HttpOnly, SameSite=Strict cookie; forms need its CSRF token; a link works once."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app

ADMIN = "dora.dorvakt@baerum.example.no"


@pytest.fixture
async def base(start_service, settings):
    listed = settings.model_copy(update={"admins": [ADMIN]})
    await start_service(notifications_app, "notifications", app_settings=listed)
    return await start_service(registration_app, "registration", app_settings=listed)


async def event_with_people(base: str, admin_headers: dict) -> tuple[str, list[dict]]:
    slug = f"jam-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC) + timedelta(days=30)
    async with aiohttp.ClientSession(base) as http:
        resp = await http.post("/events", headers=admin_headers, json={
            "slug": slug, "title": "Innovasjonsjam", "venue": "Bærum rådhus", "capacity": 2,
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=6)).isoformat()})
        assert resp.status == 201, await resp.text()
        people = []
        for name in ("Kari Nordmann", "Ola Normann", "Per Venteliste"):
            resp = await http.post(f"/events/{slug}/registrations", json={
                "name": name, "email": f"{uuid.uuid4().hex[:8]}@example.no", "organisation": "Bærum kommune",
                "consent": True})
            people.append(await resp.json())
    return slug, people


def browser_like(base: str) -> aiohttp.ClientSession:
    # unsafe: keeps cookies of an IP address (127.0.0.1), as browsers do.
    return aiohttp.ClientSession(base, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, mailbox, next_path: str) -> str:
    """Ask for a link as a browser would (after being sent to the sign-in page), then follow it; the link."""
    resp = await http.get(next_path)
    assert resp.status == 200 and resp.url.path == "/staff/sign-in"
    next_value = resp.url.query["next"]
    resp = await http.post("/staff/sign-in", data={"email": ADMIN.upper(), "next": next_value})
    assert resp.status == 200 and "Sjå e-posten din" in await resp.text()
    [mail] = await mailbox.wait_for(ADMIN, subject_contains="Logg inn")
    link = re.search(r"(http://\S+/staff/sign-in/link\?token=\S+)", mail["Text"]).group(1)
    resp = await http.get(link)
    assert resp.status == 200 and http.cookie_jar.filter_cookies(resp.url) == {}  # a GET signs nobody in
    token = re.search(r'name="token" value="([^"]+)"', await resp.text()).group(1)
    resp = await http.post("/staff/sign-in/link", data={"token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == next_path
    cookie = resp.cookies[f"moteplass_registration_staff"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and int(cookie["max-age"]) <= 2 * 3600
    return token


async def test_an_admin_signs_in_by_the_mailed_link_and_checks_people_in_at_the_door(base, admin_headers, mailbox):
    slug, (kari, ola, per) = await event_with_people(base, admin_headers)
    async with browser_like(base) as http:
        token = await sign_in(http, mailbox, f"/door/{slug}")
        page = await (await http.get(f"/door/{slug}", params={"q": "kar"})).text()
        assert "Kari Nordmann" in page and "Ola Normann" not in page
        assert "Per Venteliste" not in await (await http.get(f"/door/{slug}")).text()  # no seat, not at the door
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

        resp = await http.post(f"/door/{slug}/check-in", data={"id": kari["id"], "q": "kar"})
        assert resp.status == 403  # no CSRF token: refused, nothing done
        resp = await http.post(f"/door/{slug}/check-in", data={"id": kari["id"], "q": "kar", "csrf": csrf})
        assert resp.status == 200 and "Kari Nordmann er sjekka inn." in await resp.text()
        assert "1 av 2" in await resp.text()

        csv = await http.get(f"/door/{slug}/registrations.csv")
        assert csv.status == 200 and csv.content_type == "text/csv" and "Kari Nordmann" in await csv.text()

        # The link works once.
        resp = await http.post("/staff/sign-in/link", data={"token": token}, allow_redirects=False)
        assert resp.status == 403

        resp = await http.post("/staff/sign-out", data={"csrf": csrf})
        assert resp.url.path == "/staff/sign-in"
        resp = await http.get(f"/door/{slug}/registrations.csv", allow_redirects=False)
        assert resp.status == 303

    async with aiohttp.ClientSession(base) as http:  # the API still takes bearer tokens
        resp = await http.get(f"/events/{slug}/counts", headers=admin_headers)
        assert (await resp.json())["checked_in"] == 1
        resp = await http.get(f"/events/{slug}/registrations", headers=admin_headers)
        checked = {r["id"]: r["checked_in_by"] for r in (await resp.json())["items"]}
        assert checked[kari["id"]] == ADMIN  # who was at the door: the signed-in address


async def test_an_unlisted_address_is_told_the_same_and_gets_no_mail(base, mailbox):
    stranger = f"{uuid.uuid4().hex[:8]}@example.no"
    async with aiohttp.ClientSession(base) as http:
        resp = await http.post("/staff/sign-in", data={"email": stranger, "next": "https://evil.example/"})
        assert resp.status == 200 and "Sjå e-posten din" in await resp.text()
        resp = await http.get("/staff/sign-in/link", params={"token": "forged"})
        assert resp.status == 403 and "Be om ei ny lenkje" in await resp.text()
    with pytest.raises(AssertionError):
        await mailbox.wait_for(stranger, timeout_s=1)
