"""Issue #10, headers a client controls: X-Request-Id goes into answers and events only when it looks like a request
id, and X-Forwarded-For names the client only as far as trusted proxies wrote it."""

import re

import pytest

from tests.conftest import free_port, within_one_window
from tests.integration.registration.conftest import person, registration_app

pytestmark = pytest.mark.integration
FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("sent", ["x" * 129, "<script>alert(1)</script>", "id with spaces", "ærlig", "a;b=c"])
async def test_a_request_id_that_is_no_request_id_is_replaced_in_the_answer_and_the_events(
        http, base, tap, create_event, sent):
    await create_event()
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(),
                         headers={"X-Request-Id": sent}) as resp:
        assert resp.status == 201, await resp.text()
        rid = resp.headers["X-Request-Id"]
        registration_id = (await resp.json())["id"]
    assert FRESH.fullmatch(rid) and rid != sent
    [event] = await tap.wait_for("registration.confirmed", registration_id=registration_id)
    assert event["correlationid"] == rid
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json={},
                         headers={"X-Request-Id": sent}) as resp:
        assert resp.status == 422
        assert FRESH.fullmatch(resp.headers["X-Request-Id"])
        assert (await resp.json())["error"]["request_id"] == resp.headers["X-Request-Id"]


async def test_a_well_formed_request_id_is_kept_end_to_end(http, base, tap, create_event):
    await create_event()
    rid = "3f2c6a1e-8d5b-4c1a-9e7f-0b1d2c3e4f5a"
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(),
                         headers={"X-Request-Id": rid}) as resp:
        assert resp.status == 201 and resp.headers["X-Request-Id"] == rid
        registration_id = (await resp.json())["id"]
    [event] = await tap.wait_for("registration.confirmed", registration_id=registration_id)
    assert event["correlationid"] == rid


async def test_behind_one_trusted_proxy_the_client_cannot_make_itself_another_client(
        http, start_service, create_event, settings):
    await create_event()
    proxied = await start_service(registration_app(posts_per_minute=3), "registration", port=free_port(),
                                  app_settings=settings.model_copy(update={"trusted_proxies": 1}))
    url = f"{proxied}/events/innovasjonsjam/registrations"
    await within_one_window()
    statuses = []
    for n in range(5):  # the client writes a new address each time; the proxy appends the one it saw
        async with http.post(url, json=person(n), headers={"X-Forwarded-For": f"10.66.0.{n}, 192.0.2.7"}) as resp:
            statuses.append(resp.status)
    assert statuses == [201] * 3 + [429] * 2
    async with http.post(url, json=person(9), headers={"X-Forwarded-For": "192.0.2.7, 192.0.2.8"}) as resp:
        assert resp.status == 201  # another client behind the proxy has its own count
