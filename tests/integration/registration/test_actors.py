"""Admin actions record who did them: the subject of the admin's token is kept on what the action changed (as the
admin API shows it) and named in the events it caused (CloudEvents Auth Context: authtype, authid)."""

from shared.auth import Role, issue_token

from .conftest import event_body, person
from .test_registration import manage_link

ADMIN = "kari.nordmann@baerum.kommune.no"


def by_admin(event: dict) -> bool:
    return event["authtype"] == "app_user" and event["authid"] == ADMIN


async def call(http, method: str, url: str, headers: dict, status: int = 200, **kwargs) -> dict | None:
    async with http.request(method, url, headers=headers, **kwargs) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json() if resp.content_length else None


async def test_event_changes_name_the_admin(settings, http, base, tap):
    admin = {"Authorization": f"Bearer {issue_token(settings, Role.admin, subject=ADMIN)}"}
    created = await call(http, "POST", f"{base}/events", admin, 201, json=event_body(published=False))
    assert created["created_by"] == ADMIN and created["published_by"] is None
    slug = created["slug"]
    assert (await call(http, "POST", f"{base}/events/{slug}/publish", admin))["published_by"] == ADMIN
    assert (await call(http, "PATCH", f"{base}/events/{slug}", admin, json={"venue": "Sandvika"}))["updated_by"] == ADMIN
    assert (await call(http, "POST", f"{base}/events/{slug}/cancel", admin))["cancelled_by"] == ADMIN
    for kind in ("event.published", "event.updated", "event.cancelled"):
        assert by_admin((await tap.wait_for(kind))[0]), kind
    async with http.get(f"{base}/events/{slug}") as resp:  # the public view does not say who
        assert "cancelled_by" not in await resp.json()


async def test_registration_changes_name_the_admin(settings, http, base, tap, create_event, register):
    admin = {"Authorization": f"Bearer {issue_token(settings, Role.admin, subject=ADMIN)}"}
    await create_event(capacity=1)
    seated = await register("innovasjonsjam", person(1))
    waiting = await register("innovasjonsjam", person(2))
    later = await register("innovasjonsjam", person(3))
    confirmed = (await tap.wait_for("registration.confirmed", registration_id=seated["id"]))[0]
    assert confirmed["authtype"] is None and confirmed["authid"] is None  # the participant's own act

    checked = await call(http, "POST", f"{base}/registrations/{seated['id']}/check-in", admin)
    assert checked["checked_in_by"] == ADMIN
    assert by_admin((await tap.wait_for("registration.checked_in", registration_id=seated["id"]))[0])

    await call(http, "POST", f"{base}/registrations/{waiting['id']}/cancel", admin, 204)
    for version in ("registration.cancelled.v2", "registration.cancelled"):
        cancelled = (await tap.wait_for(version, registration_id=waiting["id"]))[0]
        assert cancelled["data"]["reason"] == "admin" and by_admin(cancelled), version

    await call(http, "POST", f"{base}/registrations/{later['id']}/erase", admin, 204)
    assert by_admin((await tap.wait_for("registration.erased", registration_id=later["id"]))[0])

    page = await call(http, "GET", f"{base}/events/innovasjonsjam/registrations", admin)
    who = {r["id"]: (r["checked_in_by"], r["cancelled_by"], r["erased_by"]) for r in page["items"]}
    assert who == {seated["id"]: (ADMIN, None, None), waiting["id"]: (None, ADMIN, None),
                   later["id"]: (None, None, ADMIN)}


async def test_a_participants_own_cancellation_names_no_admin(http, base, tap, create_event, register):
    await create_event()
    me = await register("innovasjonsjam", person(1))
    path, token = await manage_link(tap, me["id"], "registration.confirmed")
    async with http.delete(f"{base}/registrations/{me['id']}", params={"token": token}) as resp:
        assert resp.status == 204
    cancelled = (await tap.wait_for("registration.cancelled.v2", registration_id=me["id"]))[0]
    assert cancelled["data"]["reason"] == "participant" and cancelled["authid"] is None
