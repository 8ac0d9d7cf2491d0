"""Idempotency-Key on POSTs, and the rate limit on public POSTs."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient

from services.registration import domain
from services.registration.store import Store
from tests.conftest import free_port, within_one_window

from .conftest import person, registration_app


async def post(http, url: str, body: dict, key: str | None = None, **headers) -> tuple[int, dict, dict]:
    if key:
        headers["Idempotency-Key"] = key
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_the_same_key_and_body_replays_the_first_response(http, base, tap, create_event):
    await create_event()
    url = f"{base}/events/innovasjonsjam/registrations"
    first = await post(http, url, person(1), key="k-1")
    again = await post(http, url, person(1), key="k-1")
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2].get("Idempotent-Replayed") == "true"
    await tap.wait_for("registration.confirmed")
    await asyncio.sleep(0.1)
    assert len(tap.of_type("registration.confirmed")) == 1  # one registration, one message

    status, body, _ = await post(http, url, person(2), key="k-1")
    assert status == 422 and body["error"]["details"][0]["field"] == "Idempotency-Key"
    status, _, _ = await post(http, url, person(1), key="k-2")  # a new key runs again: a real duplicate
    assert status == 409


async def test_a_refused_request_is_not_kept_so_it_can_be_retried(http, base, create_event):
    url = f"{base}/events/innovasjonsjam/registrations"
    assert (await post(http, url, person(1), key="k"))[0] == 404  # no such event yet
    await create_event()
    assert (await post(http, url, person(1), key="k"))[0] == 201


async def test_while_the_first_is_in_flight_the_same_key_is_409(settings, http, base, create_event, admin_headers):
    await create_event()
    # A request under this key has begun and not finished (as seen from another instance).
    url = f"{base}/events/innovasjonsjam/registrations"
    client = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    store = Store(client[settings.db_name("registration")])
    body = json.dumps(person(1)).encode()
    prior = await store.begin_request(domain.fingerprint("/events/innovasjonsjam/registrations", "k"),
                                      domain.fingerprint(b"", body), datetime.now(UTC) + timedelta(hours=1), 60)
    await client.close()
    assert prior is None
    async with http.post(url, data=body, headers={"Idempotency-Key": "k", "Content-Type": "application/json"}) as resp:
        assert resp.status == 409
        assert "ikkje ferdig" in (await resp.json())["error"]["message"]


async def test_public_posts_are_limited_per_client_address(http, start_service, create_event, settings):
    await create_event()
    limited = await start_service(registration_app(posts_per_minute=3), "registration", port=free_port())
    url = f"{limited}/events/innovasjonsjam/registrations"
    await within_one_window()
    results = [await post(http, url, person(n)) for n in range(7)]
    refused = [(body, headers) for status, body, headers in results if status == 429]
    assert [status for status, _, _ in results] == [201] * 3 + [429] * 4
    body, headers = refused[0]
    assert 1 <= int(headers["Retry-After"]) <= 60 and body["error"]["message"]
    # Another address (behind a trusted proxy) has its own count.
    proxied = await start_service(registration_app(posts_per_minute=3), "registration", port=free_port(),
                                  app_settings=settings.model_copy(update={"trusted_proxies": 1}))
    status, _, _ = await post(http, f"{proxied}/events/innovasjonsjam/registrations", person(8),
                              **{"X-Forwarded-For": "10.1.2.3"})
    assert status == 201
