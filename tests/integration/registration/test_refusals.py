"""Bad input, duplicates, closed registration and missing rights get a clear 4xx, and nothing is stored."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from shared.auth import Role, issue_token

from .conftest import event_body, person


async def stored_registrations(settings) -> int:
    client = AsyncMongoClient(settings.mongo_url)
    try:
        return await client[settings.db_name("registration")]["registrations"].count_documents({})
    finally:
        await client.close()


@pytest.mark.parametrize("body, field, kind", [
    ({k: v for k, v in person().items() if k != "email"}, "email", "missing"),
    ({k: v for k, v in person().items() if k != "name"}, "name", "missing"),
    (person(email="ikkje-ei-adresse"), "email", "email"),
    (person(email={"$ne": None}), "email", "string_type"),
    (person(name={"$gt": ""}), "name", "string_type"),
    (person(consent=False), "consent", "consent_required"),
    (person(consent="kanskje"), "consent", "bool_type"),
    (person(organisation=42), "organisation", "string_type"),
    (person(language="de"), "language", "enum"),
    (person(name="   "), "name", "string_too_short"),
    (person(role="admin"), "role", "extra_forbidden"),
])
async def test_bad_registration_is_422_with_field_errors_and_nothing_stored(settings, http, base, create_event,
                                                                           body, field, kind):
    await create_event()
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=body) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["message"] and error["details"]
    assert (field, kind) in [(d["field"], d["type"]) for d in error["details"]], error
    assert all(d["message"] for d in error["details"])
    assert await stored_registrations(settings) == 0


async def test_body_that_is_not_an_object_is_refused(settings, http, base, create_event):
    await create_event()
    for raw, status in [(b"[1, 2]", 422), (b"{not json", 400)]:
        async with http.post(f"{base}/events/innovasjonsjam/registrations", data=raw,
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == status
            assert (await resp.json())["error"]["message"]
    assert await stored_registrations(settings) == 0


async def test_the_same_email_twice_is_409_and_holds_nothing(settings, http, base, create_event, register):
    await create_event(capacity=2)
    await register("innovasjonsjam", person(1))
    error = (await register("innovasjonsjam", person(1, email="DELTAKAR1@baerum.kommune.no"), status=409))["error"]
    assert "alt påmeld" in error["message"]
    assert await stored_registrations(settings) == 1
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 1  # the seat the duplicate took for a moment is back


async def test_registration_outside_the_window_is_409(settings, create_event, register):
    now = datetime.now(UTC)
    await create_event(slug="seinare", registration_opens_at=(now + timedelta(days=1)).isoformat())
    await create_event(slug="stengd", registration_closes_at=(now - timedelta(minutes=1)).isoformat(),
                       registration_opens_at=(now - timedelta(days=2)).isoformat())
    assert "opnar" in (await register("seinare", person(1), status=409))["error"]["message"]
    assert "stengd" in (await register("stengd", person(1), status=409))["error"]["message"]
    assert (await register("finst-ikkje", person(1), status=404))["error"]["message"]
    assert await stored_registrations(settings) == 0


async def test_creating_an_event_needs_an_admin_token(settings, http, base, moderator_headers):
    async with http.post(f"{base}/events", json=event_body()) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    async with http.post(f"{base}/events", json=event_body(), headers=moderator_headers) as resp:
        assert resp.status == 403
    other_secret = settings.model_copy(update={"jwt_secret": SecretStr("another-secret-another-secret-32")})
    forged = issue_token(other_secret, Role.admin)
    async with http.post(f"{base}/events", json=event_body(), headers={"Authorization": f"Bearer {forged}"}) as resp:
        assert resp.status == 401
    async with http.get(f"{base}/events") as resp:
        assert await resp.json() == []


@pytest.mark.parametrize("changes, field", [
    ({"capacity": 0}, "capacity"),
    ({"capacity": "ti"}, "capacity"),
    ({"capacity": True}, "capacity"),
    ({"slug": "Ikkje Gyldig"}, "slug"),
    ({"starts_at": "2027-01-10T10:00:00"}, "starts_at"),
    ({"ends_at": "2020-01-01T10:00:00+01:00"}, "ends_at"),
    ({"title": {"$ne": None}}, "title"),
])
async def test_bad_event_is_422(http, base, admin_headers, changes, field):
    async with http.post(f"{base}/events", json=event_body(**changes), headers=admin_headers) as resp:
        assert resp.status == 422
        assert field in [d["field"] for d in (await resp.json())["error"]["details"]]
    async with http.get(f"{base}/events") as resp:
        assert await resp.json() == []


async def test_the_same_slug_twice_is_409(http, base, admin_headers, create_event):
    await create_event()
    async with http.post(f"{base}/events", json=event_body(), headers=admin_headers) as resp:
        assert resp.status == 409
