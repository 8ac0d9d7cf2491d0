"""One outside guest per municipality (the seed's Innovasjonsjam rule), enforced atomically."""

import asyncio
from urllib.parse import parse_qs, urlparse

from .conftest import person
from .test_registration import manage_link

BAERUM = {"organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"}}
ASKER = {"organisation_type": "kommune", "municipality": {"number": "3203", "name": "Asker"}}


async def invite(http, base, path: str, token: str, email: str) -> tuple[int, dict]:
    async with http.post(f"{base}{path}/guest-invites", params={"token": token}, json={"email": email}) as resp:
        return resp.status, await resp.json()


async def test_a_participant_invites_one_guest_from_outside_the_municipality(http, base, tap, create_event,
                                                                             register):
    await create_event()
    host = await register("innovasjonsjam", person(1, **BAERUM))
    path, token = await manage_link(tap, host["id"], "registration.confirmed")

    status, body = await invite(http, base, path, token, "Gjest@Nettverk.example.no")
    assert (status, body["municipality"]) == (201, "Bærum"), body
    [invited] = await tap.wait_for("registration.guest_invited")
    data = invited["data"]
    assert (data["guest_email"], data["inviter_name"], data["municipality"]) == (
        "gjest@nettverk.example.no", "Deltakar 1", "Bærum")
    code = parse_qs(urlparse(data["invite_url"]).query)["invite"][0]

    # The code is bound to the invited address …
    other = person(9, email="nokon.annan@example.no", invite_code=code)
    assert (await register("innovasjonsjam", other, status=422))["error"]["details"][0]["field"] == "email"
    # … brings someone from outside the municipality …
    same = person(9, email="gjest@nettverk.example.no", invite_code=code, **BAERUM)
    assert "utanfor Bærum" in (await register("innovasjonsjam", same, status=409))["error"]["message"]
    # … and works once.
    guest = await register("innovasjonsjam", person(9, email="gjest@nettverk.example.no", invite_code=code))
    assert guest["status"] == "confirmed"
    again = person(10, email="gjest@nettverk.example.no", invite_code=code)
    assert (await register("innovasjonsjam", again, status=409))["error"]["message"]

    # The quota is the municipality's, not the participant's: a colleague cannot invite another.
    colleague = await register("innovasjonsjam", person(2, **BAERUM))
    path2, token2 = await manage_link(tap, colleague["id"], "registration.confirmed")
    status, body = await invite(http, base, path2, token2, "gjest2@example.no")
    assert status == 409 and "Bærum har alt invitert" in body["error"]["message"]

    bad = person(11, email="x@example.no", invite_code="ikkje-ein-kode")
    assert (await register("innovasjonsjam", bad, status=422))["error"]["details"][0]["field"] == "invite_code"


async def test_ten_concurrent_invites_from_one_municipality_give_exactly_one(http, base, tap, create_event, register):
    await create_event(capacity=20)
    hosts = [await register("innovasjonsjam", person(n, **ASKER)) for n in range(10)]
    links = [await manage_link(tap, h["id"], "registration.confirmed") for h in hosts]
    results = await asyncio.gather(*(invite(http, base, path, token, f"gjest{n}@example.no")
                                     for n, (path, token) in enumerate(links)))
    assert sorted(status for status, _ in results) == [201] + [409] * 9
    await tap.wait_for("registration.guest_invited")
    await asyncio.sleep(0.1)
    assert len(tap.of_type("registration.guest_invited")) == 1


async def test_who_may_not_invite(http, base, tap, create_event, register):
    await create_event(capacity=1)
    private = await register("innovasjonsjam", person(1, organisation_type="privat verksemd"))
    waiting = await register("innovasjonsjam", person(2, **BAERUM))
    path, token = await manage_link(tap, private["id"], "registration.confirmed")
    status, body = await invite(http, base, path, token, "gjest@example.no")
    assert status == 409 and "frå ein kommune" in body["error"]["message"]
    path, token = await manage_link(tap, waiting["id"], "registration.waitlisted")
    status, body = await invite(http, base, path, token, "gjest@example.no")
    assert status == 409 and "stadfesta plass" in body["error"]["message"]
    status, _ = await invite(http, base, path, "feil", "gjest@example.no")
    assert status == 404
