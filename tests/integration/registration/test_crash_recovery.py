"""A process that dies part-way through a flow loses nothing: the next instance to start finishes the flow and
publishes what was recorded. "Dying" is simulated by making the first instance's next step fail and silencing
its relay, so only the second instance can recover."""

import asyncio
import time
from urllib.parse import parse_qs, urlparse

from pymongo import AsyncMongoClient

from services.registration.routes import REGISTRATIONS
from tests.conftest import free_port

from .conftest import event_body, person, registration_app
from .test_double_opt_in import confirm_api
from .test_registration import manage_link


class Crash(Exception):
    pass


async def crash(*_args, **_kwargs):
    raise Crash("the process died here")


async def nothing(*_args, **_kwargs):
    return 0


async def start_doomed(start_service, settings):
    """An instance whose relay never runs, returned with its flows so a test can break one step."""
    app = registration_app()(settings)
    base = await start_service(lambda _: app, "registration")
    flows = app[REGISTRATIONS]
    flows.outbox.sweep = nothing
    return base, flows


async def registration_doc(settings, rid: str) -> dict:
    client = AsyncMongoClient(settings.mongo_url)
    try:
        return await client[settings.db_name("registration")]["registrations"].find_one({"_id": rid})
    finally:
        await client.close()


async def post(http, url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_crash_between_store_write_and_publish_is_published_by_the_relay(settings, start_service, tap, http,
                                                                               admin_headers):
    base, flows = await start_doomed(start_service, settings)
    assert (await post(http, f"{base}/events", event_body(), admin_headers))[0] == 201
    flows.outbox.try_flush = flows.outbox.try_flush_many = nothing  # dies right after the write, before publishing
    status, created = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1))
    assert status == 201

    stored = await registration_doc(settings, created["id"])
    assert stored["status"] == "confirmed"
    assert [e["type"] for e in stored["outbox"]] == ["no.moteplass.registration.confirmed.v1"]
    assert not tap.of_type("registration.confirmed")

    await start_service(registration_app(), "registration", port=free_port())
    [message] = await tap.wait_for("registration.confirmed")
    assert message["id"] == stored["outbox"][0]["id"] and message["data"]["registration_id"] == created["id"]
    assert (await registration_doc(settings, created["id"]))["outbox"] == []


async def test_crash_after_taking_a_seat_gives_the_seat_back(settings, start_service, tap, http, admin_headers):
    base, flows = await start_doomed(start_service, settings)
    assert (await post(http, f"{base}/events", event_body(capacity=1), admin_headers))[0] == 201
    flows.store.insert_registrations = crash  # the seat is taken, the registration never stored
    status, _ = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1))
    assert status == 500
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 0

    second = await start_service(registration_app(orphan_after_s=0.3), "registration", port=free_port())
    deadline = time.monotonic() + 10
    while True:
        async with http.get(f"{second}/events/innovasjonsjam") as resp:
            if (await resp.json())["seats_left"] == 1:
                break
        assert time.monotonic() < deadline, "the orphaned seat was not given back"
        await asyncio.sleep(0.05)
    status, retried = await post(http, f"{second}/events/innovasjonsjam/registrations", person(1))
    assert (status, retried["status"]) == (201, "confirmed")
    assert len(await tap.wait_for("registration.confirmed")) == 1


async def test_crash_while_confirming_an_email_is_finished_by_the_next_instance(settings, start_service, tap, http,
                                                                              admin_headers):
    base, flows = await start_doomed(start_service, settings)
    body = event_body(capacity=1, require_email_confirmation=True)
    assert (await post(http, f"{base}/events", body, admin_headers))[0] == 201
    _, pending = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1))
    [message] = await tap.wait_for("registration.pending", registration_id=pending["id"])
    flows.store.transition = crash  # the seat is taken, the registration never learns it
    async with http.post(confirm_api(message["data"]["confirm_url"])) as resp:
        assert resp.status == 500

    second = await start_service(registration_app(), "registration", port=free_port())
    path, token = await manage_link(tap, pending["id"], "registration.confirmed")
    async with http.get(f"{second}{path}", params={"token": token}) as resp:
        assert (await resp.json())["status"] == "confirmed"
    # Finished, not repeated: the seat is taken once, and the next person waits.
    status, late = await post(http, f"{second}/events/innovasjonsjam/registrations", person(2))
    assert status == 201
    [waiting] = await tap.wait_for("registration.pending", registration_id=late["id"])
    async with http.post(confirm_api(waiting["data"]["confirm_url"]).replace(base, second)) as resp:
        assert (await resp.json())["position"] == 1


async def test_crash_while_cancelling_is_finished_and_the_seat_passed_on(settings, start_service, tap, http,
                                                                         admin_headers):
    base, flows = await start_doomed(start_service, settings)
    assert (await post(http, f"{base}/events", event_body(capacity=1), admin_headers))[0] == 201
    _, holder = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1))
    _, waiting = await post(http, f"{base}/events/innovasjonsjam/registrations", person(2))
    path, token = await manage_link(tap, holder["id"], "registration.confirmed")
    flows.store.release = crash  # marked as cancelling, the seat never given back
    async with http.delete(f"{base}{path}", params={"token": token}) as resp:
        assert resp.status == 500
    assert (await registration_doc(settings, holder["id"]))["status"] == "cancelling"

    await start_service(registration_app(), "registration", port=free_port())
    [cancelled] = await tap.wait_for("registration.cancelled.v2")
    [promoted] = await tap.wait_for("registration.promoted")
    assert cancelled["data"]["registration_id"] == holder["id"]
    assert promoted["data"]["registration_id"] == waiting["id"]


async def test_crash_after_claiming_a_guest_code_gives_the_code_back(settings, start_service, tap, http,
                                                                    admin_headers):
    base, flows = await start_doomed(start_service, settings)
    assert (await post(http, f"{base}/events", event_body(capacity=5), admin_headers))[0] == 201
    baerum = {"organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"}}
    _, host = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1, **baerum))
    path, token = await manage_link(tap, host["id"], "registration.confirmed")
    async with http.post(f"{base}{path}/guest-invites", params={"token": token},
                         json={"email": "gjest@nettverk.example.no"}) as resp:
        assert resp.status == 201
    [invited] = await tap.wait_for("registration.guest_invited")
    code = parse_qs(urlparse(invited["data"]["invite_url"]).query)["invite"][0]
    guest = person(2, email="gjest@nettverk.example.no", invite_code=code)

    flows.store.insert_registrations = crash  # the code is claimed, the registration never stored
    status, _ = await post(http, f"{base}/events/innovasjonsjam/registrations", guest)
    assert status == 500

    second = await start_service(registration_app(orphan_after_s=0.3), "registration", port=free_port())
    deadline = time.monotonic() + 10
    while True:
        status, body = await post(http, f"{second}/events/innovasjonsjam/registrations", guest)
        if status == 201:
            break
        assert status == 409 and time.monotonic() < deadline, (status, body)  # "already used", until given back
        await asyncio.sleep(0.1)
    assert body["status"] == "confirmed"


async def test_crash_while_cancelling_a_møteplass_cancels_its_registrations_in_the_next_instance(
        settings, start_service, tap, http, admin_headers):
    base, flows = await start_doomed(start_service, settings)
    assert (await post(http, f"{base}/events", event_body(capacity=1), admin_headers))[0] == 201
    _, holder = await post(http, f"{base}/events/innovasjonsjam/registrations", person(1))
    _, waiting = await post(http, f"{base}/events/innovasjonsjam/registrations", person(2))
    flows.store.mark_all_cancelling = crash  # the møteplass is cancelled, its registrations never marked
    async with http.post(f"{base}/events/innovasjonsjam/cancel", headers=admin_headers) as resp:
        assert resp.status == 500
    assert (await registration_doc(settings, holder["id"]))["status"] == "confirmed"

    await start_service(registration_app(), "registration", port=free_port())
    cancelled = await tap.wait_for("registration.cancelled", count=2, timeout_s=20)
    assert {m["data"]["registration_id"] for m in cancelled} == {holder["id"], waiting["id"]}
    assert not tap.of_type("registration.promoted")
