"""Issue 5, audit: the admin API over the notification records, and erasure of a person's records."""

import aiohttp

from services.notifications.app import create_app
from shared.messages.registration import RegistrationCancelled, RegistrationErased

from .conftest import address, confirmed, eventually


async def test_admins_page_through_the_records_by_recipient_event_kind_and_status(
        settings, start_service, publish, mailbox, admin_headers, moderator_headers):
    base = await start_service(create_app, "notifications")
    kari, ola = address(), address()
    registration = confirmed(kari)
    await publish(registration)
    await publish(confirmed(ola, event=registration.event.model_copy(update={"slug": "anna"})))
    await mailbox.wait_for(kari)
    await publish(RegistrationCancelled(**{**registration.model_dump(), "status": "cancelled"}))
    await mailbox.wait_for(kari, count=2)
    await mailbox.wait_for(ola)

    async with aiohttp.ClientSession(headers=admin_headers) as http:
        async def get(path: str, **params) -> tuple[int, dict]:
            async with http.get(f"{base}{path}", params=params) as resp:
                return resp.status, await resp.json()

        status, page = await eventually(lambda: _page_of(get, recipient=kari, status="sent", size=2))
        assert [item["kind"] for item in page["items"]] == ["cancelled", "confirmed"]  # newest first
        assert page["items"][0]["event_slug"] == registration.event.slug and page["items"][0]["attempts"] == 1
        assert page["next"] is None

        _, first = await get("/notifications", recipient=kari, limit="1")
        _, second = await get("/notifications", recipient=kari, limit="1", after=first["next"])
        assert [first["items"][0]["kind"], second["items"][0]["kind"]] == ["cancelled", "confirmed"]
        assert second["next"] is None
        _, by_event = await get("/notifications", event="anna")
        assert [item["recipient"] for item in by_event["items"]] == [ola]
        _, by_kind = await get("/notifications", kind="cancelled")
        assert [item["recipient"] for item in by_kind["items"]] == [kari]

        status, one = await get(f"/notifications/{first['items'][0]['id']}")
        assert status == 200 and one == first["items"][0] and one["sent_at"]
        assert (await get("/notifications/0123456789abcdef01234567"))[0] == 404
        assert (await get("/notifications/not-an-id"))[0] == 404
        status, error = await get("/notifications", limit="0", kind="fax")
        assert status == 422 and {d["field"] for d in error["error"]["details"]} == {"limit", "kind"}

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/notifications") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/notifications", headers=moderator_headers) as resp:
            assert resp.status == 403


async def _page_of(get, recipient: str, status: str, size: int):
    code, page = await get("/notifications", recipient=recipient, status=status)
    return (code, page) if len(page["items"]) == size else None


async def test_erasure_anonymises_the_persons_records_and_keeps_the_rest(
        settings, start_service, publish, mailbox, records):
    await start_service(create_app, "notifications")
    kari, ola = address(), address()
    registration = confirmed(kari)
    await publish(registration)
    await publish(confirmed(ola))
    await mailbox.wait_for(kari)
    await mailbox.wait_for(ola)
    await eventually(lambda: records.find_one({"recipient": kari, "status": "sent"}))

    await publish(RegistrationErased(registration_id=registration.registration_id, event_slug=registration.event.slug,
                                     email=kari, reason="request"))
    await eventually(lambda: records.find_one({"erased": True}))
    assert await records.count_documents({"recipient": kari}) == 0
    [erased] = await records.find({"erased": True}).to_list()
    assert erased["kind"] == "confirmed" and erased["status"] == "sent" and kari not in str(erased)
    assert await records.count_documents({"recipient": ola}) == 1
    db = records.database
    assert await db["attendees"].count_documents({"email": kari}) == 0
