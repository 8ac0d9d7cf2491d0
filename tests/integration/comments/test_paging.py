"""A thread of 10,000 approved comments, seeded straight through the store, paged to the end over HTTP."""

from datetime import UTC, datetime

from bson import ObjectId

from services.comments import domain
from services.comments.models import NewComment
from services.comments.store import Store
from shared.messages.comments import CommentStatus
from shared.mongo import connect

THREAD = "stor-trad"


async def seed(settings, count: int) -> list[domain.Comment]:
    client = connect(settings)
    store = Store(client[settings.db_name("comments")])
    now = datetime.now(UTC)
    comments = [domain.new_comment(
        THREAD, NewComment(author_name=f"Person {n}", email=f"p{n}@example.no", body=f"Kommentar nummer {n}"),
        id=store.new_id(now), parent=None, max_depth=2, status=CommentStatus.approved, ip="10.0.0.1", now=now)
        for n in range(count)]
    await store.insert_many([(comment, []) for comment in comments])
    await client.close()
    return comments


async def walk(http, base, sort: str, limit: int) -> list[dict]:
    """Every comment of the thread, following next_cursor page by page."""
    seen, cursor = [], None
    while True:
        params = {"sort": sort, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{base}/threads/{THREAD}/comments", params=params) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        seen += page["comments"]
        if not (cursor := page["next_cursor"]):
            return seen


async def test_ten_thousand_comments_page_to_the_end_without_gap_or_repeat(base, http, settings):
    ids = sorted(c.id for c in await seed(settings, 10_000))
    for sort, expected in [("newest", ids[::-1]), ("oldest", ids)]:
        seen = [c["id"] for c in await walk(http, base, sort, 100)]
        assert len(seen) == len(set(seen)) == 10_000
        assert seen == expected


async def test_most_replied_first_then_newest(base, http, settings):
    seeded = await seed(settings, 30)
    client = connect(settings)
    comments = client[settings.db_name("comments")]["comments"]
    for n, comment in enumerate(seeded[:5]):
        await comments.update_one({"_id": ObjectId(comment.id)}, {"$set": {"reply_count": n + 1}})
    await client.close()
    seen = [(c["reply_count"], c["id"]) for c in await walk(http, base, "most_replied", 7)]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 30
    assert [count for count, _ in seen[:5]] == [5, 4, 3, 2, 1]


async def test_a_bad_cursor_is_a_clear_400(base, http):
    for _ in range(2):  # pages are cached; a refusal is not
        async with http.get(f"{base}/threads/{THREAD}/comments", params={"cursor": "eyJ4Ijp7fX0"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["message"] == "Ugyldig sidepeikar (cursor)."
