"""Double opt-in: a registration holds nothing until the address has proved itself through the emailed link."""

import asyncio
import time
from urllib.parse import urlparse

from pymongo import AsyncMongoClient

from .conftest import person, registration_app


async def confirm_link(tap, registration_id: str) -> str:
    """The API's confirm URL for the page link in the message (which posts its form to the same use case)."""
    [pending] = await tap.wait_for("registration.pending", registration_id=registration_id)
    return confirm_api(pending["data"]["confirm_url"])


def confirm_api(page_url: str) -> str:
    assert "/manage/confirm?" in page_url, page_url
    return page_url.replace("/manage/confirm?", "/confirm?")


async def test_unconfirmed_registrations_hold_no_seat_and_confirmations_take_seats_in_their_order(
        http, base, tap, create_event, register):
    await create_event(capacity=1, require_email_confirmation=True)
    first = await register("innovasjonsjam", person(1))
    second = await register("innovasjonsjam", person(2))
    assert first["status"] == second["status"] == "pending_confirmation"
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 1
    await tap.wait_for("registration.pending", 2)
    assert not tap.of_type("registration.confirmed")

    # The second to register confirms first, and so gets the seat.
    second_link, first_link = await confirm_link(tap, second["id"]), await confirm_link(tap, first["id"])
    async with http.get(second_link.replace("/confirm?", "/manage/confirm?")) as resp:
        assert resp.status == 200 and "<form" in await resp.text()  # only a button: fetching confirms nothing
    async with http.post(second_link) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "confirmed"
    async with http.post(first_link) as resp:
        body = await resp.json()
        assert (body["status"], body["position"]) == ("waitlisted", 1)
    async with http.post(first_link) as resp:  # the link used again changes nothing
        assert (await resp.json())["status"] == "waitlisted"
    [confirmed] = await tap.wait_for("registration.confirmed")
    assert confirmed["data"]["registration_id"] == second["id"]
    assert len(await tap.wait_for("registration.waitlisted")) == 1

    wrong = urlparse(first_link)._replace(query="token=nope").geturl()
    async with http.post(wrong) as resp:
        assert resp.status == 404


async def test_expired_pending_registrations_are_removed(settings, http, start_service, tap, admin_headers):
    from .conftest import event_body
    base = await start_service(registration_app(confirmation_valid_hours=0.5 / 3600), "registration")
    async with http.post(f"{base}/events", json=event_body(require_email_confirmation=True),
                         headers=admin_headers) as resp:
        assert resp.status == 201
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(1)) as resp:
        rid = (await resp.json())["id"]
    link = await confirm_link(tap, rid)

    client = AsyncMongoClient(settings.mongo_url)
    registrations = client[settings.db_name("registration")]["registrations"]
    deadline = time.monotonic() + 10
    while await registrations.count_documents({}) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    remaining = await registrations.count_documents({})
    await client.close()
    assert remaining == 0
    async with http.post(link) as resp:
        assert resp.status == 404
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(1)) as resp:
        assert resp.status == 201  # the address is free again
