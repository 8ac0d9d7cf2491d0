"""Moderators' decisions record who made them: the subject of the moderator's token is kept on the comment (as the
moderation queue shows it) and named in the event the decision caused (CloudEvents Auth Context)."""

from pymongo import AsyncMongoClient

from shared.auth import Role, issue_token
from tests.integration.comments.conftest import comment
from tests.integration.comments.test_comments import THREAD, URL, moderate, post

MODERATOR = "ola.nordmann@baerum.kommune.no"


async def test_moderation_names_the_moderator(settings, base, http, tap):
    moderator = {"Authorization": f"Bearer {issue_token(settings, Role.moderator, subject=MODERATOR)}"}
    ids = [(await post(http, base, comment(body=f"Nr {n}")))[1]["id"] for n in range(3)]
    submitted = (await tap.wait_for("comment.submitted.v1", 3))[0]
    assert submitted["authid"] is None  # the author's own act

    await moderate(http, base, moderator, "approve", ids[0])
    await moderate(http, base, moderator, "reject", ids[1])
    await moderate(http, base, moderator, "delete", ids[2])
    for kind, cid in (("comment.published.v1", ids[0]), ("comment.rejected.v1", ids[1]),
                      ("comment.deleted.v1", ids[2])):
        [event] = [e for e in await tap.wait_for(kind) if e["data"]["comment_id"] == cid]
        assert (event["authtype"], event["authid"]) == ("app_user", MODERATOR), kind

    for status, cid in (("rejected", ids[1]), ("deleted", ids[2])):
        async with http.get(f"{base}/moderation/comments", params={"status": status}, headers=moderator) as resp:
            [queued] = (await resp.json())["comments"]
        assert (queued["id"], queued["moderated_by"]) == (cid, MODERATOR)
    async with http.get(f"{base}{URL}") as resp:  # the public page does not say who
        page = await resp.text()
    assert "Nr 0" in page and "moderated_by" not in page and MODERATOR not in page


async def test_thread_settings_and_imports_name_the_moderator(settings, base, http):
    moderator = {"Authorization": f"Bearer {issue_token(settings, Role.moderator, subject=MODERATOR)}"}
    thread = URL.removesuffix("/comments")
    async with http.patch(f"{base}{thread}", json={"closed": True}, headers=moderator) as resp:
        assert resp.status == 200 and MODERATOR not in await resp.text()
    exported = {"comments": [{**comment(), "id": "a", "status": "approved", "created_at": "2026-01-05T10:00:00Z"}]}
    async with http.post(f"{base}/threads/kopi/import", json=exported, headers=moderator) as resp:
        assert resp.status == 200, await resp.text()
    client = AsyncMongoClient(settings.mongo_url)
    try:
        db = client[settings.db_name("comments")]
        assert (await db["threads"].find_one({"_id": THREAD}))["updated_by"] == MODERATOR
        assert (await db["comments"].find_one({"thread_id": "kopi"}))["imported_by"] == MODERATOR
    finally:
        await client.close()
