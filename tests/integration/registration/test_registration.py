import asyncio
from urllib.parse import parse_qs, urlparse

from pymongo import AsyncMongoClient

from shared.messages.envelope import overlapping
from shared.messages.registration import RegistrationCancelled

from .conftest import person


async def manage_link(tap, registration_id: str, kind: str) -> tuple[str, str]:
    """The registration's API path and the token of the personal link (to its manage page) in the message."""
    [message] = await tap.wait_for(kind, registration_id=registration_id)
    url = urlparse(message["data"]["manage_url"])
    assert url.path == f"/registrations/{registration_id}/manage", url.path
    return url.path.removesuffix("/manage"), parse_qs(url.query)["token"][0]


async def test_register_publishes_confirmation_with_a_link_that_shows_and_cancels(http, base, tap, create_event,
                                                                                   register):
    event = await create_event(capacity=2)
    assert event["seats_left"] == 2
    [published] = await tap.wait_for("event.published")
    assert published["data"]["event"]["slug"] == "innovasjonsjam"

    created = await register("innovasjonsjam", person(1, email="Kari.Nordmann@Baerum.Kommune.no"),
                             headers={"X-Request-Id": "req-123"})
    assert created["status"] == "confirmed" and created["position"] is None
    [message] = await tap.wait_for("registration.confirmed")
    assert message["correlationid"] == "req-123"
    data = message["data"]
    assert data["registration_id"] == created["id"]
    assert (data["name"], data["email"], data["language"], data["status"]) == (
        "Deltakar 1", "kari.nordmann@baerum.kommune.no", "nn", "confirmed")
    assert data["event"]["title"] == "Innovasjonsjam i Bærum"
    path, token = await manage_link(tap, created["id"], "registration.confirmed")

    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 1
    async with http.get(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "confirmed"
    async with http.get(f"{base}{path}", params={"token": token[:-2] + "xx"}) as resp:
        assert resp.status == 404
    async with http.delete(f"{base}{path}", params={"token": "wrong"}) as resp:
        assert resp.status == 404
    async with http.delete(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 204

    [cancelled] = await tap.wait_for("registration.cancelled.v2")
    assert cancelled["data"]["registration_id"] == created["id"] and cancelled["data"]["reason"] == "participant"
    assert cancelled["data"]["previous_status"] == "confirmed"
    # The version it replaces goes out beside it during the overlap, with the v1 shape and an id of its own.
    if overlapping(RegistrationCancelled):
        [older] = await tap.wait_for("registration.cancelled.v1")
        assert older["data"] == {k: v for k, v in cancelled["data"].items() if k != "previous_status"}
        assert older["id"] != cancelled["id"] and older["time"] == cancelled["time"]
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 2
    async with http.delete(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 204  # cancelling twice is harmless …
    await asyncio.sleep(0.1)
    assert len(tap.of_type("registration.cancelled.v2")) == 1  # … and says so once


async def test_the_token_is_stored_only_as_a_hash(settings, base, tap, create_event, register):
    await create_event()
    created = await register("innovasjonsjam", person(1))
    _, token = await manage_link(tap, created["id"], "registration.confirmed")
    client = AsyncMongoClient(settings.mongo_url)
    doc = await client[settings.db_name("registration")]["registrations"].find_one({"_id": created["id"]})
    await client.close()
    assert token not in str(doc) and len(doc["token_hashes"]) == 1


async def test_fifty_concurrent_registrations_for_ten_seats(http, base, tap, create_event, register):
    await create_event(capacity=10)
    results = await asyncio.gather(*(register("innovasjonsjam", person(n)) for n in range(50)))

    confirmed = [r for r in results if r["status"] == "confirmed"]
    waitlisted = [r for r in results if r["status"] == "waitlisted"]
    assert len(confirmed) == 10 and len(waitlisted) == 40
    assert sorted(r["position"] for r in waitlisted) == list(range(1, 41))
    await tap.wait_for("registration.confirmed", 10)
    messages = await tap.wait_for("registration.waitlisted", 40)
    assert sorted(m["data"]["position"] for m in messages) == list(range(1, 41))
    assert len({m["id"] for m in tap.messages if m["type"].startswith("no.moteplass.registration.")}) == 50
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        event = await resp.json()
    assert (event["seats_left"], event["waitlist_length"]) == (0, 40)


async def test_cancelling_a_seat_promotes_the_first_in_line_at_once(http, base, tap, create_event, register):
    await create_event(capacity=1)
    holder = await register("innovasjonsjam", person(1))
    first = await register("innovasjonsjam", person(2))
    second = await register("innovasjonsjam", person(3))
    assert (first["status"], first["position"], second["position"]) == ("waitlisted", 1, 2)
    path, token = await manage_link(tap, holder["id"], "registration.confirmed")

    async with http.delete(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 204
    [promoted] = await tap.wait_for("registration.promoted", timeout_s=1)
    assert promoted["data"]["registration_id"] == first["id"] and promoted["data"]["status"] == "confirmed"

    # The promotion mail's link is the promoted person's own, and the queue moved up.
    path, token = await manage_link(tap, first["id"], "registration.promoted")
    async with http.get(f"{base}{path}", params={"token": token}) as resp:
        assert (await resp.json())["status"] == "confirmed"
    path, token = await manage_link(tap, second["id"], "registration.waitlisted")
    async with http.get(f"{base}{path}", params={"token": token}) as resp:
        assert (await resp.json())["position"] == 1


async def test_leaving_the_waiting_list(http, base, tap, create_event, register):
    await create_event(capacity=1)
    await register("innovasjonsjam", person(1))
    waiting = await register("innovasjonsjam", person(2))
    path, token = await manage_link(tap, waiting["id"], "registration.waitlisted")
    async with http.delete(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 204
    [left] = await tap.wait_for("registration.cancelled.v2")
    assert (left["data"]["reason"], left["data"]["previous_status"]) == ("left_waiting_list", "waitlisted")
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["waitlist_length"] == 0
    assert not tap.of_type("registration.promoted")


async def test_two_hundred_registrations_over_two_instances_for_ninety_seats(http, base, tap, start_service,
                                                                            create_event):
    from tests.conftest import free_port

    from .conftest import registration_app
    other = await start_service(registration_app(), "registration", port=free_port())
    await create_event(capacity=90)

    async def post(n: int) -> dict:
        async with http.post(f"{(base, other)[n % 2]}/events/innovasjonsjam/registrations", json=person(n)) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    results = await asyncio.gather(*(post(n) for n in range(200)))
    waitlisted = sorted((r for r in results if r["status"] == "waitlisted"), key=lambda r: r["position"])
    assert sum(r["status"] == "confirmed" for r in results) == 90
    assert [r["position"] for r in waitlisted] == list(range(1, 111))
    # Arrival order: the waiting list is promoted in the order of the positions handed out.
    first, second = waitlisted[0], waitlisted[1]
    holder = next(r for r in results if r["status"] == "confirmed")
    path, token = await manage_link(tap, holder["id"], "registration.confirmed")
    async with http.delete(f"{other}{path}", params={"token": token}) as resp:
        assert resp.status == 204
    [promoted] = await tap.wait_for("registration.promoted", timeout_s=1)
    assert promoted["data"]["registration_id"] == first["id"]
    path, token = await manage_link(tap, second["id"], "registration.waitlisted")
    async with http.get(f"{base}{path}", params={"token": token}) as resp:
        assert (await resp.json())["position"] == 1
