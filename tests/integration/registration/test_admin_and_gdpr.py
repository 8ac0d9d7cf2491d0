"""Admin tools (lists, counts, CSV, check-in) and GDPR (own data, erasure on request, retention purge)."""

import asyncio
import csv
import io
import time
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient

from .conftest import event_body, person, registration_app
from .test_registration import manage_link

KOMMUNE = {"organisation_type": "kommune", "municipality": {"number": "3105", "name": "Sarpsborg"}}


async def get(http, url: str, headers: dict, **params) -> tuple[int, dict]:
    async with http.get(url, headers=headers, params=params) as resp:
        return resp.status, await resp.json()


async def test_list_filters_and_pages_in_arrival_order(http, base, admin_headers, create_event, register):
    await create_event(capacity=3)
    ids = [(await register("innovasjonsjam", person(n, **(KOMMUNE if n % 2 else {}))))["id"] for n in range(5)]
    url = f"{base}/events/innovasjonsjam/registrations"

    status, page = await get(http, url, admin_headers, limit=2)
    assert status == 200 and [r["id"] for r in page["items"]] == ids[:2]
    seen = [r["id"] for r in page["items"]]
    while page["next_cursor"]:
        _, page = await get(http, url, admin_headers, limit=2, cursor=page["next_cursor"])
        seen += [r["id"] for r in page["items"]]
    assert seen == ids

    _, waiting = await get(http, url, admin_headers, status="waitlisted")
    assert [(r["id"], r["position"]) for r in waiting["items"]] == [(ids[3], 1), (ids[4], 2)]
    _, sarpsborg = await get(http, url, admin_headers, organisation_type="kommune", municipality="3105")
    assert [r["id"] for r in sarpsborg["items"]] == [ids[1], ids[3]]
    assert (await get(http, url, admin_headers, status="ukjend"))[0] == 422
    assert (await get(http, url, {}))[0] == 401

    status, counts = await get(http, f"{base}/events/innovasjonsjam/counts", admin_headers)
    assert (status, counts) == (200, {"confirmed": 3, "waitlisted": 2})


async def test_csv_export_opens_in_excel_with_norwegian_headers(http, base, admin_headers, create_event, register):
    await create_event(questions=[{"id": "diett", "text": "Diett", "kind": "single_choice",
                                   "options": ["vegan", "ingen"]}])
    await register("innovasjonsjam", person(1, name="Åse Ørnhøj", answers={"diett": "vegan"}, **KOMMUNE))
    await register("innovasjonsjam", person(2, name="=HYPERLINK(\"http://x\")"))
    async with http.get(f"{base}/events/innovasjonsjam/registrations.csv", headers=admin_headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        raw = await resp.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["Namn", "E-post", "Telefon"] and rows[0][-1] == "Diett"
    assert rows[1][0] == "Åse Ørnhøj" and rows[1][5:8] == ["3105", "Sarpsborg", "confirmed"] and rows[1][-1] == "vegan"
    assert rows[2][0].startswith("'=")  # a formula from a participant stays text


async def test_check_in(http, base, tap, admin_headers, create_event, register):
    await create_event(capacity=1)
    seated = await register("innovasjonsjam", person(1))
    waiting = await register("innovasjonsjam", person(2))
    async with http.post(f"{base}/registrations/{seated['id']}/check-in", headers=admin_headers) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "checked_in"
    async with http.post(f"{base}/registrations/{seated['id']}/check-in", headers=admin_headers) as resp:
        assert resp.status == 200  # at the door twice: still one check-in
    async with http.post(f"{base}/registrations/{waiting['id']}/check-in", headers=admin_headers) as resp:
        assert resp.status == 409
    async with http.post(f"{base}/registrations/{seated['id']}/check-in") as resp:
        assert resp.status == 401
    await tap.wait_for("registration.checked_in")
    await asyncio.sleep(0.1)
    assert len(tap.of_type("registration.checked_in")) == 1


async def stored(settings, rid: str) -> dict:
    client = AsyncMongoClient(settings.mongo_url)
    try:
        return await client[settings.db_name("registration")]["registrations"].find_one({"_id": rid})
    finally:
        await client.close()


async def test_own_data_download_answers_change_and_erasure_on_request(settings, http, base, tap, create_event,
                                                                       register):
    await create_event(capacity=1, questions=[{"id": "tema", "text": "Tema", "kind": "text"}])
    me = await register("innovasjonsjam", person(1, phone="+47 91234567", answers={"tema": "Open Space"}))
    waiting = await register("innovasjonsjam", person(2))
    path, token = await manage_link(tap, me["id"], "registration.confirmed")

    changed = {"answers": {"tema": "Tenestedesign"}}
    async with http.patch(f"{base}{path}", params={"token": token}, json=changed) as resp:
        assert resp.status == 200 and (await resp.json())["answers"] == {"tema": "Tenestedesign"}
    async with http.patch(f"{base}{path}", params={"token": token}, json={"answers": {"nei": "x"}}) as resp:
        assert resp.status == 422
    async with http.get(f"{base}{path}/data", params={"token": token}) as resp:
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        data = await resp.json()
    assert (data["name"], data["email"], data["phone"]) == ("Deltakar 1", "deltakar1@baerum.kommune.no", "+47 91234567")
    assert data["answers"] == {"tema": "Tenestedesign"} and "token_hashes" not in data

    async with http.delete(f"{base}{path}/data", params={"token": token}) as resp:
        assert resp.status == 204
    [erased] = await tap.wait_for("registration.erased")
    assert (erased["data"]["email"], erased["data"]["reason"]) == ("deltakar1@baerum.kommune.no", "request")
    [promoted] = await tap.wait_for("registration.promoted")
    assert promoted["data"]["registration_id"] == waiting["id"]
    doc = await stored(settings, me["id"])
    assert doc["status"] == "erased" and "Deltakar 1" not in str(doc) and "deltakar1" not in str(doc)
    async with http.get(f"{base}{path}/data", params={"token": token}) as resp:
        assert resp.status == 404  # the link died with the data


async def test_admin_erasure(settings, http, base, tap, admin_headers, create_event, register):
    await create_event()
    me = await register("innovasjonsjam", person(1))
    async with http.post(f"{base}/registrations/{me['id']}/erase", headers=admin_headers) as resp:
        assert resp.status == 204
    await tap.wait_for("registration.erased")
    assert (await stored(settings, me["id"]))["status"] == "erased"
    async with http.post(f"{base}/registrations/{me['id']}/erase", headers=admin_headers) as resp:
        assert resp.status == 204
    await asyncio.sleep(0.1)
    assert len(tap.of_type("registration.erased")) == 1


async def test_retention_purge_removes_personal_data_keeps_counts_and_publishes_erased(
        settings, http, start_service, tap, admin_headers):
    base = await start_service(registration_app(purge_interval_s=0.1), "registration")
    async with http.post(f"{base}/events", json=event_body(retention_days=0), headers=admin_headers) as resp:
        assert resp.status == 201
    for n in range(3):
        async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(n)) as resp:
            assert resp.status == 201
    assert not tap.of_type("registration.erased")
    past = datetime.now(UTC) - timedelta(days=1)
    async with http.patch(f"{base}/events/innovasjonsjam", headers=admin_headers, json={
            "starts_at": (past - timedelta(hours=6)).isoformat(), "ends_at": past.isoformat()}) as resp:
        assert resp.status == 200, await resp.text()

    erased = await tap.wait_for("registration.erased", 3)
    assert {m["data"]["reason"] for m in erased} == {"retention"}
    client = AsyncMongoClient(settings.mongo_url)
    registrations = client[settings.db_name("registration")]["registrations"]
    deadline = time.monotonic() + 5
    while await registrations.count_documents({"status": "erased"}) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    docs = await registrations.find().to_list()
    await client.close()
    assert not any("Deltakar" in str(doc) or "baerum.kommune.no" in str(doc) for doc in docs)
    # The anonymous counts stay.
    assert (await get(http, f"{base}/events/innovasjonsjam/counts", admin_headers))[1] == {"confirmed": 3}
