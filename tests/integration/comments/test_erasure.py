"""No person's data or event is lost or kept too long: erasure (by registration or a signed link), the outbox."""

import asyncio
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

from bson import ObjectId

from services.comments import domain
from services.comments.models import NewComment
from services.comments.store import Store
from shared.bus import Bus
from shared.messages import make_event
from shared.messages.comments import CommentDeleted, CommentStatus
from shared.messages.registration import RegistrationErased
from shared.mongo import connect
from tests.integration.comments.conftest import comment
from tests.integration.comments.test_comments import URL, get, post, published


async def stored(settings, **query) -> list[dict]:
    client = connect(settings)
    try:
        return await client[settings.db_name("comments")]["comments"].find(query).to_list()
    finally:
        await client.close()


async def test_an_erased_person_is_anonymised_once_and_the_thread_keeps_its_shape(base, http, settings,
                                                                                 moderator_headers):
    top = await published(http, base, moderator_headers, email="Kari@Example.no")
    reply = await published(http, base, moderator_headers, parent_id=top, email="ola@example.no",
                            author_name="Ola", body="Svar")
    await post(http, base, comment(body="Ventar framleis"))

    bus = await Bus(settings, source="/test/registration").connect()
    event = make_event(RegistrationErased(registration_id="r1", event_slug="innovasjon", email="KARI@example.no",
                                          reason="request"), source="/test/registration")
    for _ in range(2):  # a redelivery must change nothing more
        await bus.publish(event)
    await bus.close()

    for _ in range(200):
        if not await stored(settings, email="kari@example.no"):
            break
        await asyncio.sleep(0.02)
    kari = await stored(settings, author_name="Anonym")
    assert len(kari) == 2 and all("email" not in d and "ip" not in d and d["body"] for d in kari)
    assert [d["author_name"] for d in await stored(settings, email="ola@example.no")] == ["Ola"]

    [shown] = (await get(http, base, URL))["comments"]
    assert (shown["id"], shown["author_name"]) == (top, "Anonym")
    assert [(r["id"], r["author_name"]) for r in shown["replies"]] == [(reply, "Ola")]
    async with http.get(f"{base}/moderation/comments", headers=moderator_headers) as resp:
        [queued] = (await resp.json())["comments"]
    assert (queued["author_name"], queued["email"], queued["body"]) == ("Anonym", None, "Ventar framleis")


async def test_an_author_anonymises_their_comments_with_a_mailed_signed_link(base, http, settings, tap,
                                                                            moderator_headers):
    top = await published(http, base, moderator_headers)
    answers = []
    for email in ("ingen@example.no", "KARI@example.no"):  # the answer does not tell whether there are comments
        async with http.post(f"{base}/erasure/requests", json={"email": email, "language": "nb"}) as resp:
            answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1] and answers[0][0] == 202
    [requested] = await tap.wait_for("comment.erasure_requested.v1")
    assert [e["data"]["email"] for e in tap.messages if "erasure" in e["type"]] == ["kari@example.no"]
    data = requested["data"]
    assert (data["comment_count"], data["language"]) == (1, "nb")
    link = urlparse(data["erase_url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{base}/erasure/confirm"  # the page, on this service
    token, language = (parse_qs(link.query)[key][0] for key in ("token", "lang"))
    assert language == "nb"

    async with http.get(f"{base}/erasure", params={"token": token}) as resp:
        assert (await resp.json())["comments"] == 1  # looking changes nothing
    assert (await get(http, base, URL))["comments"][0]["author_name"] == "Kari Nordmann"
    async with http.post(f"{base}/erasure", json={"token": token + "x"}) as resp:
        assert resp.status == 403
    async with http.post(f"{base}/erasure", json={"token": token}) as resp:
        assert (await resp.json())["anonymised"] == 1
    [shown] = (await get(http, base, URL))["comments"]
    assert (shown["id"], shown["author_name"]) == (top, "Anonym")
    assert await stored(settings, email="kari@example.no") == []


async def test_an_event_stored_but_never_published_goes_out_at_start_up(start_comments, config, settings, tap):
    """As after a crash between the write and the publish: the start-up sweep of the outbox sends it."""
    client = connect(settings)
    store = Store(client[settings.db_name("comments")])
    now = datetime.now(UTC)
    comment = domain.new_comment("t", NewComment(author_name="Kari", email="kari@example.no", body="Hei"),
                                 id=store.new_id(now), parent=None, max_depth=2, status=CommentStatus.pending, ip=None,
                                 now=now)
    event = make_event(CommentDeleted(thread_id="t", comment_id=comment.id, by="author", placeholder=False),
                       source="/test")
    await store.insert_many([(comment, [event])])
    await client.close()
    await start_comments(config)
    [sent] = await tap.wait_for("comment.deleted.v1")
    assert sent["id"] == event.id
    assert (await stored(settings, _id=ObjectId(comment.id)))[0]["outbox"] == []


async def test_client_ips_are_dropped_after_the_retention_time(base, http, settings):
    await post(http, base, comment(body="Skriven før grensa"))
    await asyncio.sleep(0.05)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await post(http, base, comment(body="Skriven etter grensa"))
    client = connect(settings)
    try:
        old, new = sorted(await stored(settings), key=lambda doc: doc["order"])
        assert old["ip"] and new["ip"]
        assert await Store(client[settings.db_name("comments")]).forget_ips(cutoff) == 1
        kept = {doc["_id"]: doc for doc in await stored(settings)}
        assert "ip" not in kept[old["_id"]] and kept[new["_id"]]["ip"] == new["ip"]
        assert kept[old["_id"]]["body"] == old["body"]  # only the address goes
    finally:
        await client.close()
