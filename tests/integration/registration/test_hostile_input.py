"""Issue #10's findings about the registration routes, probed from outside (HTTP and the mail sink): whatever
the API accepts leaves every read answering, and what it refuses it refuses with a 4xx, writing nothing."""

import re
import uuid

import pytest

from services.notifications.app import create_app as notifications_app

from .conftest import event_body, person


async def status_of(http, method: str, url: str, **kwargs) -> int:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status


async def test_finding_2_accepted_writes_never_break_later_reads(http, base, admin_headers, create_event, register):
    """An erased registration is listed as an erased row (no personal data); a PATCH nulling what a møteplass
    must have is a 422 that writes nothing."""
    await create_event(capacity=1)
    kept = await register("innovasjonsjam", person(1))
    erased = await register("innovasjonsjam", person(2))
    assert await status_of(http, "POST", f"{base}/registrations/{erased['id']}/erase", headers=admin_headers) == 204

    async with http.get(f"{base}/events/innovasjonsjam/registrations", headers=admin_headers) as resp:
        assert resp.status == 200, await resp.text()
        rows = {row["id"]: row for row in (await resp.json())["items"]}
    assert rows[kept["id"]]["email"] == "deltakar1@baerum.kommune.no"
    assert rows[erased["id"]]["status"] == "erased"
    assert [rows[erased["id"]][k] for k in ("name", "email", "organisation", "phone")] == [None] * 4
    async with http.get(f"{base}/events/innovasjonsjam/registrations", headers=admin_headers,
                        params={"status": "erased"}) as resp:
        assert [row["id"] for row in (await resp.json())["items"]] == [erased["id"]]
    for path in ("registrations.csv", "counts"):
        assert await status_of(http, "GET", f"{base}/events/innovasjonsjam/{path}", headers=admin_headers) == 200

    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        before = await resp.json()
    for field in ("title", "starts_at", "ends_at", "capacity", "venue", "description", "address"):
        async with http.patch(f"{base}/events/innovasjonsjam", json={field: None}, headers=admin_headers) as resp:
            assert resp.status == 422, (field, await resp.text())
            assert (await resp.json())["error"]["details"][0]["field"] == field
    async with http.get(f"{base}/events") as resp:
        assert resp.status == 200 and await resp.json() == [before]
    # The registration window's ends are the fields that may be cleared.
    async with http.patch(f"{base}/events/innovasjonsjam", json={"registration_closes_at": None},
                          headers=admin_headers) as resp:
        assert resp.status == 200 and (await resp.json())["registration_closes_at"] is None


@pytest.mark.parametrize("timezone", ["Europe", "Europe/" + "x" * 300, "../../etc/passwd", "", "Europe/Oslo\x00"])
async def test_finding_3_an_unknown_timezone_is_a_422(http, base, admin_headers, timezone):
    async with http.post(f"{base}/events", json=event_body(timezone=timezone), headers=admin_headers) as resp:
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["error"]["details"][0]["field"] == "timezone"
    assert await status_of(http, "GET", f"{base}/events/innovasjonsjam", headers=admin_headers) == 404


async def test_finding_8_a_cancelled_registration_is_read_only_and_its_address_may_register_again(
        http, base, start_service, mailbox, create_event, register):
    await start_service(notifications_app, "notifications")
    await create_event(questions=[{"id": "diett", "text": "Diett", "kind": "text"}])
    email = f"finding8-{uuid.uuid4().hex[:10]}@baerum.kommune.no"
    first = await register("innovasjonsjam", person(1, email=email, answers={"diett": "vegan"}))
    [mail] = await mailbox.wait_for(email)
    # The mailed link opens the page to manage the registration; its id and token open the API's too.
    [(rid, token)] = set(re.findall(r"https?://\S+/registrations/(\w+)/manage\?token=([\w-]+)", mail["Text"]))
    assert rid == first["id"]
    link = f"{base}/registrations/{rid}?token={token}"

    async with http.delete(link) as resp:
        assert resp.status == 204
    async with http.patch(link, json={"answers": {"diett": "ingen"}}) as resp:
        assert resp.status == 409
        assert "avmeld" in (await resp.json())["error"]["message"]
    async with http.get(link) as resp:
        assert (await resp.json())["status"] == "cancelled" and (await resp.json())["answers"] == {"diett": "vegan"}

    again = await register("innovasjonsjam", person(1, email=email))
    assert again["status"] == "confirmed" and again["id"] != first["id"]
    await register("innovasjonsjam", person(1, email=email.upper()), status=409)  # while live, still one


@pytest.mark.parametrize("change", [
    {"consent": "yes"}, {"consent": 1}, {"consent": "true"}, {"consent": None},
])
async def test_finding_9_consent_must_be_the_json_true(http, base, create_event, register, admin_headers, change):
    await create_event()
    error = (await register("innovasjonsjam", person(1, **change), status=422))["error"]
    assert [d["field"] for d in error["details"]] == ["consent"]
    async with http.get(f"{base}/events/innovasjonsjam/counts", headers=admin_headers) as resp:
        assert await resp.json() == {}


@pytest.mark.parametrize("change", [
    {"starts_at": 0}, {"starts_at": "0"}, {"starts_at": 1_800_000_000}, {"ends_at": "1700000000"},
    {"starts_at": "0001-01-01T00:00:00+01:00"}, {"ends_at": "9999-12-31T23:59:59-14:00"},
    {"waitlist_enabled": 0}, {"published": "false"}, {"capacity": "10"}, {"capacity": 10.5}, {"capacity": True},
])
async def test_finding_9_an_event_takes_exact_types_only(http, base, admin_headers, change):
    async with http.post(f"{base}/events", json=event_body(**change), headers=admin_headers) as resp:
        assert resp.status == 422, await resp.text()
        assert [d["field"] for d in (await resp.json())["error"]["details"]] == list(change)
    assert await status_of(http, "GET", f"{base}/events/innovasjonsjam", headers=admin_headers) == 404


async def test_finding_10_the_openapi_document_says_what_the_routes_accept_and_answer(http, base):
    async with http.get(f"{base}/openapi.json") as resp:
        document = await resp.json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    listing = paths["/events/{slug}/registrations"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 500)
    register = paths["/events/{slug}/registrations"]["post"]
    assert {"400", "415", "422", "503"} <= set(register["responses"])
    assert "Retry-After" in register["responses"]["503"]["headers"]
    token_route = paths["/registrations/{id}"]["get"]
    assert next(p for p in token_route["parameters"] if p["name"] == "token")["required"]
    assert "422" in token_route["responses"]  # the token missing
    assert {"401", "403"} <= set(paths["/events"]["post"]["responses"])
    person = schemas["RegistrationIn"]["properties"]
    assert person["email"]["format"] == "email"
    assert person["consent"]["const"] is True and person["consent"]["type"] == "boolean"
    assert schemas["EventIn"]["properties"]["starts_at"]["format"] == "date-time"

    # What the document says is what happens: a missing token is a 422, JSON that is not JSON a 400.
    async with http.get(f"{base}/registrations/x") as resp:
        assert resp.status == 422
    async with http.post(f"{base}/events/x/registrations", data=b"{not json",
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
