"""Issue #10's findings about the comments routes, probed from outside (HTTP only): hostile or careless input is
a 4xx that writes nothing, never a 500."""

import base64
import json

import pytest

from .conftest import comment


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path, cursor", [
    ("/threads/side/comments", cursor_of(["newest", *[[]] * 1])),
    ("/threads/side/comments?sort=most_replied", cursor_of(["most_replied", 2**63, "0" * 24])),
    ("/threads/side/comments?sort=most_replied", cursor_of(["most_replied", -1, "0" * 24])),
    ("/threads/side/comments", base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode()),
    ("/threads/side/comments", cursor_of(["newest", "[" * 40 + "]" * 40])),
    ("/moderation/comments", cursor_of(["oldest", 10**30])),
    ("/moderation/comments", base64.urlsafe_b64encode(b"[" * 100 + b"]" * 100).decode()),
])
async def test_finding_3_a_deep_or_huge_cursor_is_a_4xx(base, http, moderator_headers, path, cursor):
    separator = "&" if "?" in path else "?"
    async with http.get(f"{base}{path}{separator}cursor={cursor}", headers=moderator_headers) as resp:
        assert resp.status in (400, 422), await resp.text()
        assert (await resp.json())["error"]["message"]


def exported(**changes) -> dict:
    return {"id": "a", "author_name": "Kari", "email": "kari@example.no", "body": "Ein god møteplass.",
            "status": "approved", "created_at": "2024-05-01T12:00:00+02:00", **changes}


@pytest.mark.parametrize("comments, field", [
    ([exported(created_at="1969-12-31T23:59:59Z")], "comments.0.created_at"),
    ([exported(created_at="0001-01-01T00:00:00+00:00")], "comments.0.created_at"),
    ([exported(created_at="2106-02-08T00:00:00Z")], "comments.0.created_at"),
    ([exported(edited_at="9999-12-31T23:59:59Z")], "comments.0.edited_at"),
    ([exported(created_at=0)], "comments.0.created_at"),
    ([exported(), exported(body="Ein annan tekst.")], "comments"),  # two comments, one id
    ([exported(body="")], "comments.0.body"),  # finding 9
    ([exported(body="   ")], "comments.0.body"),
    ([exported(author_name="")], "comments.0.author_name"),
    ([exported(author_name=" \u3000 ")], "comments.0.author_name"),
    ([exported(notify_replies=1)], "comments.0.notify_replies"),
])
async def test_finding_3_and_9_a_bad_import_is_a_422_that_writes_nothing(base, http, moderator_headers, comments,
                                                                        field):
    async with http.post(f"{base}/threads/kopi/import", json={"comments": comments}, headers=moderator_headers) as resp:
        assert resp.status == 422, await resp.text()
        assert field in [d["field"] for d in (await resp.json())["error"]["details"]]
    async with http.get(f"{base}/threads/kopi/export", headers=moderator_headers) as resp:
        assert (await resp.json())["comments"] == []


async def test_finding_3_an_import_in_range_with_a_deleted_placeholder_is_taken(base, http, moderator_headers):
    comments = [exported(created_at="1971-01-01T00:00:00+14:00", status="deleted", body=""),
                exported(id="b", reply_to="a", created_at="2105-12-31T23:59:59-14:00")]
    async with http.post(f"{base}/threads/kopi/import", json={"comments": comments}, headers=moderator_headers) as resp:
        assert resp.status == 200 and (await resp.json())["imported"] == 2
    async with http.get(f"{base}/threads/kopi/comments", params={"sort": "oldest"}) as resp:
        [placeholder] = (await resp.json())["comments"]
    assert placeholder["deleted"] and len(placeholder["replies"]) == 1


@pytest.mark.parametrize("change", [{"hidden": 0}, {"closed": "true"}, {"hidden": "yes"}, {"moderation": "none"}])
async def test_finding_9_thread_flags_are_the_json_true_or_false(base, http, moderator_headers, change):
    async with http.patch(f"{base}/threads/side", json=change, headers=moderator_headers) as resp:
        assert resp.status == 422, await resp.text()
    async with http.get(f"{base}/threads/side/comments") as resp:
        assert (await resp.json())["thread"] == {"id": "side", "closed": False, "hidden": False, "moderation": "pre"}


@pytest.mark.parametrize("change", [{"notify_replies": 1}, {"notify_replies": "false"}, {"body": " \n "},
                                    {"author_name": "\t"}])
async def test_finding_9_a_comment_takes_exact_types_only(base, http, moderator_headers, change):
    async with http.post(f"{base}/threads/side/comments", json=comment(**change)) as resp:
        assert resp.status == 422, await resp.text()
    async with http.get(f"{base}/moderation/comments", headers=moderator_headers) as resp:
        assert (await resp.json())["comments"] == []


async def test_finding_10_options_on_thread_counts_allows_post_only(base, http):
    async with http.options(f"{base}/threads/counts") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
    async with http.patch(f"{base}/threads/counts", json={"closed": True}) as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
    async with http.get(f"{base}/threads/{'x' * 201}/comments") as resp:
        assert resp.status == 404
