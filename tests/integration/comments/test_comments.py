"""The comments service over HTTP with the real store and broker: writing, reading, moderation, messages."""

import time
from datetime import UTC, datetime, timedelta

import jwt

from services.comments.config import CommentsConfig
from shared.settings import KeyPurpose
from tests.conftest import within_one_window
from tests.integration.comments.conftest import comment
from tests.unit.comments.xss import XSS, executable

THREAD = "/arrangement/innovasjon-bærum"
URL = "/threads/%2Farrangement%2Finnovasjon-b%C3%A6rum/comments"


async def post(http, base, body, thread_url=URL, ip="10.0.0.1", **headers):
    async with http.post(f"{base}{thread_url}", json=body, headers={"X-Forwarded-For": ip, **headers}) as resp:
        return resp.status, await resp.json(), resp.headers


async def get(http, base, path=URL, **params):
    async with http.get(f"{base}{path}", params=params) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def moderate(http, base, headers, action, *ids):
    async with http.post(f"{base}/moderation/comments", json={"ids": list(ids), "action": action},
                         headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["results"]


async def published(http, base, headers, **fields):
    """Post a comment and approve it; returns its id."""
    status, created, _ = await post(http, base, comment(**fields))
    assert status == 201, created
    assert await moderate(http, base, headers, "approve", created["id"]) == {created["id"]: "approved"}
    return created["id"]


async def test_a_new_comment_waits_for_a_moderator_and_then_appears(base, http, tap, moderator_headers):
    status, created, _ = await post(http, base, comment(body="Kjem det *opptak*?"))
    assert status == 201 and created["status"] == "pending"
    assert created["html"] == "<p>Kjem det <em>opptak</em>?</p>\n"
    assert "kari@example.no" not in str(created)
    assert (await get(http, base))["comments"] == []

    [submitted] = await tap.wait_for("comment.submitted.v1")
    data = submitted["data"]
    assert data["thread_id"] == THREAD and data["comment_id"] == created["id"]
    assert data["moderator_emails"] == ["moderator@example.no"] and data["excerpt"] == "Kjem det opptak?"
    assert "kari@example.no" not in str(submitted) and "10.0.0.1" not in str(submitted)

    async with http.get(f"{base}/moderation/comments", headers=moderator_headers) as resp:
        queue = await resp.json()
    assert [(c["id"], c["email"]) for c in queue["comments"]] == [(created["id"], "kari@example.no")]

    assert await moderate(http, base, moderator_headers, "approve", created["id"], "ffffffffffffffffffffffff") == {
        created["id"]: "approved", "ffffffffffffffffffffffff": "not_found"}
    [shown] = (await get(http, base))["comments"]
    assert (shown["id"], shown["author_name"]) == (created["id"], "Kari Nordmann")
    assert "email" not in shown and "ip" not in shown
    [event] = await tap.wait_for("comment.published.v1")
    assert event["data"]["parent"] is None and event["data"]["url"].endswith(f"#kommentar-{created['id']}")
    assert await moderate(http, base, moderator_headers, "approve", created["id"]) == {created["id"]: "unchanged"}


async def test_missing_and_bad_fields_get_a_norwegian_message_each(base, http):
    status, body, _ = await post(http, base, {"email": "ikkje ein adresse", "body": "x", "website": ""})
    assert status == 422
    fields = {d["field"]: d["message"] for d in body["error"]["details"]}
    assert fields == {"author_name": "Feltet er obligatorisk.",
                      "email": "Skriv ei gyldig e-postadresse, til dømes namn@eksempel.no.",
                      "body": "Skriv ein kommentar på minst 2 teikn."}
    status, body, _ = await post(http, base, comment(body="x" * 5001))
    assert status == 422 and body["error"]["details"][0]["field"] == "body"
    status, body, _ = await post(http, base, comment(parent_id="nope"))
    assert status == 422 and body["error"]["details"][0]["field"] == "parent_id"
    async with http.get(f"{base}/moderation/comments?status=pending") as resp:
        assert resp.status == 401  # and nothing above was written:
    assert (await get(http, base))["comments"] == []


async def test_honeypot_looks_normal_but_is_stored_as_spam(base, http, tap, moderator_headers):
    status, created, _ = await post(http, base, comment(website="http://spam.example"))
    assert status == 201 and created["status"] == "pending"
    async with http.get(f"{base}/moderation/comments?status=spam", headers=moderator_headers) as resp:
        assert [c["id"] for c in (await resp.json())["comments"]] == [created["id"]]
    async with http.get(f"{base}/moderation/comments", headers=moderator_headers) as resp:
        assert (await resp.json())["comments"] == []
    await post(http, base, comment(body="Ein ekte kommentar."))
    await tap.wait_for("comment.submitted.v1")
    assert [e["data"]["excerpt"] for e in tap.messages] == ["Ein ekte kommentar."]


async def test_the_same_text_twice_in_a_thread_is_refused(base, http):
    assert (await post(http, base, comment(body="Heilt lik tekst")))[0] == 201
    status, body, _ = await post(http, base, comment(body="  heilt LIK tekst "), ip="10.0.0.2")
    assert status == 409 and body["error"]["message"] == "Du har alt skrive akkurat denne kommentaren her."
    status, body, _ = await post(http, base, comment(body="Heilt lik tekst"), **{"Accept-Language": "en-GB,en"})
    assert status == 409 and body["error"]["message"] == "This exact comment was already posted here."
    other = "/threads/anna-side/comments"
    assert (await post(http, base, comment(body="Heilt lik tekst"), thread_url=other))[0] == 201


async def test_per_ip_limits_answer_429_with_retry_after(start_comments, http):
    base = await start_comments(CommentsConfig(posts_per_minute=3, new_threads_per_hour=1))
    await within_one_window()
    for n in range(3):
        assert (await post(http, base, comment(body=f"Kommentar {n}")))[0] == 201
    status, body, headers = await post(http, base, comment(body="Ein for mykje"))
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert body["error"]["message"].startswith("Du skriv for mange kommentarar")
    assert (await post(http, base, comment(body="Ein for mykje"), ip="10.0.0.9"))[0] == 201  # another client

    await within_one_window(3600)
    new = [(await post(http, base, comment(body=f"Tråd {n}"), thread_url=f"/threads/ny-{n}/comments",
                       ip="10.0.0.7")) for n in range(2)]
    assert [s for s, _, _ in new] == [201, 429]
    # Windows are fixed hours: the second new thread may come when this hour's window ends (in the last seconds of
    # an hour, rightly a few seconds).
    assert abs(int(new[1][2]["Retry-After"]) - (3600 - time.time() % 3600)) <= 2
    assert (await post(http, base, comment(body="Tråd 1"), thread_url="/threads/ny-0/comments", ip="10.0.0.7")
            )[0] == 201  # an existing thread is no new one


async def test_thread_moderation_modes_links_closing_and_hiding(base, http, moderator_headers, tap):
    async with http.patch(f"{base}{URL.removesuffix('/comments')}", json={"moderation": "post"},
                          headers=moderator_headers) as resp:
        assert resp.status == 200 and (await resp.json())["moderation"] == "post"
    status, created, _ = await post(http, base, comment(body="Rett ut."))
    assert created["status"] == "approved"
    status, linky, _ = await post(http, base, comment(body="https://a.no https://b.no https://c.no"))
    assert linky["status"] == "pending"
    [held] = await tap.wait_for("comment.submitted.v1")
    assert held["data"]["held_because"] == "too_many_links"
    assert [c["id"] for c in (await get(http, base))["comments"]] == [created["id"]]

    async with http.patch(f"{base}{URL.removesuffix('/comments')}", json={"closed": True},
                          headers=moderator_headers) as resp:
        assert (await resp.json())["closed"] is True
    status, body, _ = await post(http, base, comment(body="For seint."))
    assert status == 409 and "stengd" in body["error"]["message"]
    assert (await get(http, base))["thread"]["closed"] is True

    async with http.patch(f"{base}{URL.removesuffix('/comments')}", json={"hidden": True},
                          headers=moderator_headers) as resp:
        assert resp.status == 200
    page = await get(http, base)
    assert page["thread"]["hidden"] is True and page["comments"] == []
    async with http.patch(f"{base}{URL.removesuffix('/comments')}", json={"hidden": True}) as resp:
        assert resp.status == 401


async def test_known_authors_can_skip_the_queue(start_comments, http, moderator_headers):
    base = await start_comments(CommentsConfig(auto_approve_known=True, posts_per_minute=100))
    first = await published(http, base, moderator_headers)
    status, second, _ = await post(http, base, comment(body="Eg igjen."))
    assert second["status"] == "approved"
    status, stranger, _ = await post(http, base, comment(body="Ny her.", email="ny@example.no"))
    assert stranger["status"] == "pending"
    assert {c["id"] for c in (await get(http, base))["comments"]} == {first, second["id"]}


async def test_replies_nest_to_the_depth_limit_and_notify_an_opted_in_parent(base, http, moderator_headers, tap):
    top = await published(http, base, moderator_headers, notify_replies=True, body="Første")
    reply = await published(http, base, moderator_headers, parent_id=top, body="Svar", email="ola@example.no",
                            author_name="Ola")
    deep = await published(http, base, moderator_headers, parent_id=reply, body="Svar på svar")
    deeper = await published(http, base, moderator_headers, parent_id=deep, body="Endå djupare",
                             email="per@example.no")
    [page_top] = (await get(http, base))["comments"]
    assert page_top["id"] == top and page_top["reply_count"] == 3
    [r] = page_top["replies"]
    assert r["id"] == reply
    assert [c["id"] for c in r["replies"]] == [deep, deeper]  # 'deeper' attached beside 'deep', at depth 2

    events = {e["data"]["comment_id"]: e["data"] for e in await tap.wait_for("comment.published.v1", 4)}
    assert events[top]["parent"] is None
    notice = events[reply]["parent"]
    assert (notice["comment_id"], notice["author_name"], notice["email"]) == (top, "Kari Nordmann", "kari@example.no")
    assert events[deep]["parent"]["email"] is None  # Ola did not opt in
    assert events[deeper]["parent"]["comment_id"] == deep  # told to whom they answered, though placed beside

    # One-click unsubscribe on this service's own address (RFC 8058): a GET only shows the button.
    unsubscribe = notice["unsubscribe_url"]
    assert unsubscribe.startswith(f"{base}/comments/{top}/unsubscribe?token=")
    async with http.get(unsubscribe) as resp:
        assert resp.status == 200 and "<form" in await resp.text()
    await published(http, base, moderator_headers, parent_id=top, body="Eitt svar", email="liv@example.no")
    still = [e for e in await tap.wait_for("comment.published.v1", 5) if e["data"]["excerpt"] == "Eitt svar"]
    assert still[0]["data"]["parent"]["email"] == "kari@example.no"
    async with http.post(unsubscribe.replace("token=", "token=x"), data={"List-Unsubscribe": "One-Click"}) as resp:
        assert resp.status == 403
    async with http.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}) as resp:
        assert resp.status == 200 and "ikkje lenger" in await resp.text()
    await published(http, base, moderator_headers, parent_id=top, body="Eitt svar til", email="liv@example.no")
    last = [e for e in await tap.wait_for("comment.published.v1", 6) if e["data"]["excerpt"] == "Eitt svar til"]
    assert last[0]["data"]["parent"]["email"] is None


async def test_a_deleted_reply_stays_as_a_placeholder_only_while_it_has_replies(base, http, moderator_headers, tap):
    top = await published(http, base, moderator_headers, body="Første")
    reply = await published(http, base, moderator_headers, parent_id=top, body="Svar")
    answer = await published(http, base, moderator_headers, parent_id=reply, body="Svar på svaret")
    lone = await published(http, base, moderator_headers, parent_id=top, body="Eit anna svar")
    assert await moderate(http, base, moderator_headers, "delete", reply, lone) == {reply: "deleted", lone: "deleted"}
    [page_top] = (await get(http, base))["comments"]
    [placeholder] = page_top["replies"]  # the lone reply is gone; the answered one stays above its answer
    assert placeholder["id"] == reply and placeholder["deleted"]
    assert [r["id"] for r in placeholder["replies"]] == [answer]
    deleted = {e["data"]["comment_id"]: e["data"]["placeholder"] for e in await tap.wait_for("comment.deleted.v1", 2)}
    assert deleted == {reply: True, lone: False}


async def test_a_page_shows_a_few_replies_and_counts_the_hidden_ones(start_comments, http, moderator_headers):
    base = await start_comments(CommentsConfig(nested_limit=2, posts_per_minute=100))
    top = await published(http, base, moderator_headers)
    replies = [await published(http, base, moderator_headers, parent_id=top, body=f"Svar {n}") for n in range(3)]
    [shown] = (await get(http, base))["comments"]
    assert [r["id"] for r in shown["replies"]] == replies[:2] and shown["hidden_replies"] == 1


async def test_author_edits_and_deletes_with_the_edit_token(base, http, moderator_headers, tap):
    status, created, _ = await post(http, base, comment(body="Skrivefeil her"))
    token = {"X-Edit-Token": created["edit_token"]}
    comment_url = f"{base}/comments/{created['id']}"
    async with http.patch(comment_url, json={"body": "Retta **her**"}) as resp:
        assert resp.status == 403
    async with http.patch(comment_url, json={"body": "Retta **her**"}, headers={"X-Edit-Token": "feil"}) as resp:
        assert resp.status == 403
    async with http.patch(comment_url, json={"body": "Retta **her**"}, headers=token) as resp:
        assert resp.status == 200 and (await resp.json())["html"] == "<p>Retta <strong>her</strong></p>\n"
    await moderate(http, base, moderator_headers, "approve", created["id"])
    async with http.patch(comment_url, json={"body": "Retta igjen"}, headers=token) as resp:
        assert (await resp.json())["status"] == "pending"  # pre-moderation vets an edit again
    assert (await get(http, base))["comments"] == []
    await moderate(http, base, moderator_headers, "approve", created["id"])
    reply = await published(http, base, moderator_headers, parent_id=created["id"], body="Eit svar")
    async with http.delete(comment_url, headers=token) as resp:
        assert resp.status == 204
    [placeholder] = (await get(http, base))["comments"]
    assert placeholder["deleted"] and placeholder["html"] == "<p>Kommentaren er sletta.</p>"
    assert placeholder["author_name"] == "" and [r["id"] for r in placeholder["replies"]] == [reply]
    [deleted] = await tap.wait_for("comment.deleted.v1")
    assert deleted["data"] == {"thread_id": THREAD, "comment_id": created["id"], "by": "author", "placeholder": True}
    async with http.patch(comment_url, json={"body": "Igjen"}, headers=token) as resp:
        assert resp.status == 409


async def test_moderators_reject_spam_and_delete_in_bulk(base, http, moderator_headers, tap):
    ids = [(await post(http, base, comment(body=f"Nr {n}")))[1]["id"] for n in range(3)]
    assert await moderate(http, base, moderator_headers, "reject", *ids[:2]) == {i: "rejected" for i in ids[:2]}
    assert await moderate(http, base, moderator_headers, "spam", ids[2]) == {ids[2]: "spam"}
    assert await moderate(http, base, moderator_headers, "delete", *ids) == {i: "deleted" for i in ids}
    assert len(await tap.wait_for("comment.rejected.v1", 3)) == 3
    assert len(await tap.wait_for("comment.deleted.v1", 3)) == 3
    assert (await get(http, base))["comments"] == []
    # a deleted text may be written again
    assert (await post(http, base, comment(body="Nr 0")))[0] == 201


async def test_counts_for_many_threads(base, http, moderator_headers):
    await published(http, base, moderator_headers)
    await published(http, base, moderator_headers, body="To")
    await post(http, base, comment(body="Ventar"))
    async with http.post(f"{base}/threads/counts", json={"threads": [THREAD, "tom"]}) as resp:
        assert await resp.json() == {"counts": {THREAD: 2, "tom": 0}}
    async with http.patch(f"{base}{URL.removesuffix('/comments')}", json={"hidden": True},
                          headers=moderator_headers) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/threads/counts", json={"threads": [THREAD]}) as resp:
        assert await resp.json() == {"counts": {THREAD: 0}}


async def test_moderation_needs_a_moderator_or_admin(base, http, admin_headers, settings):
    async with http.post(f"{base}/moderation/comments", json={"ids": ["x"], "action": "approve"}) as resp:
        assert resp.status == 401
    viewer = jwt.encode({"sub": "x", "role": "viewer", "exp": datetime.now(UTC) + timedelta(hours=1)},
                        settings.key(KeyPurpose.bearer), algorithm="HS256")
    bad = {"Authorization": f"Bearer {viewer}"}
    async with http.get(f"{base}/moderation/comments", headers=bad) as resp:
        assert resp.status == 403
    async with http.get(f"{base}/moderation/comments", headers=admin_headers) as resp:
        assert resp.status == 200


async def test_openapi_documents_the_routes(base, http):
    async with http.get(f"{base}/openapi.json") as resp:
        doc = await resp.json()
    assert {"/threads/{thread}/comments", "/moderation/comments", "/threads/counts"} <= set(doc["paths"])
    assert "email" not in doc["components"]["schemas"]["PublicComment"]["properties"]


async def test_export_and_import_a_thread(base, http, moderator_headers):
    top = await published(http, base, moderator_headers, notify_replies=True)
    await published(http, base, moderator_headers, parent_id=top, body="Svar", email="ola@example.no")
    await post(http, base, comment(body="Ventar"))
    await post(http, base, comment(body="Kjøp billig", website="http://spam.example"))  # the honeypot: spam
    _, regretted, _ = await post(http, base, comment(body="Angra"))
    await moderate(http, base, moderator_headers, "delete", regretted["id"])
    thread = URL.removesuffix("/comments")
    async with http.get(f"{base}{thread}/export", headers=moderator_headers) as resp:
        exported = await resp.json()
    assert [(c["body"], c["status"], c["email"]) for c in exported["comments"]] == [
        ("Takk for ein god møteplass!", "approved", "kari@example.no"), ("Svar", "approved", "ola@example.no"),
        ("Ventar", "pending", "kari@example.no"), ("Kjøp billig", "spam", "kari@example.no"),
        ("", "deleted", "kari@example.no")]
    assert "ip" not in exported["comments"][0]

    async with http.post(f"{base}/threads/kopi/import", json=exported, headers=moderator_headers) as resp:
        assert await resp.json() == {"imported": 5, "skipped": 0}
    [copy] = (await get(http, base, "/threads/kopi/comments"))["comments"]
    assert copy["id"] != top and copy["reply_count"] == 1 and [r["html"] for r in copy["replies"]] == ["<p>Svar</p>\n"]
    # Neither the spam and deleted comments (no fingerprint) nor a copy deleted since is imported again.
    await moderate(http, base, moderator_headers, "delete", copy["id"])
    async with http.post(f"{base}/threads/kopi/import", json=exported, headers=moderator_headers) as resp:
        assert await resp.json() == {"imported": 0, "skipped": 5}
    async with http.get(f"{base}/threads/kopi/export", headers=moderator_headers) as resp:
        assert [c["status"] for c in (await resp.json())["comments"]] == [
            "deleted", "approved", "pending", "spam", "deleted"]
    async with http.post(f"{base}/threads/kopi/import", json={"comments": [{"id": "x"}]},
                         headers=moderator_headers) as resp:
        assert resp.status == 422
    async with http.get(f"{base}{thread}/export") as resp:
        assert resp.status == 401


async def test_an_edited_comment_is_exported_with_its_edit_time(base, http, moderator_headers):
    status, created, _ = await post(http, base, comment(body="Fyrst slik"))
    assert status == 201
    async with http.patch(f"{base}/comments/{created['id']}", json={"body": "Så slik"},
                          headers={"X-Edit-Token": created["edit_token"]}) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(f"{base}{URL.removesuffix('/comments')}/export", headers=moderator_headers) as resp:
        assert resp.status == 200, await resp.text()
        [edited] = (await resp.json())["comments"]
    assert edited["body"] == "Så slik" and edited["edited_at"] >= edited["created_at"]


async def test_the_moderation_queue_pages_oldest_first(base, http, moderator_headers):
    ids = [(await post(http, base, comment(body=f"Kø {n}")))[1]["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{base}/moderation/comments", params=params, headers=moderator_headers) as resp:
            page = await resp.json()
        seen += [c["id"] for c in page["comments"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ids


async def test_no_xss_payload_comes_back_executable_through_the_api(start_comments, http, moderator_headers):
    base = await start_comments(CommentsConfig(posts_per_minute=1000, max_links=100))
    async with http.patch(f"{base}/threads/xss", json={"moderation": "post"}, headers=moderator_headers) as resp:
        assert resp.status == 200
    for n, payload in enumerate(XSS):
        status, created, _ = await post(http, base, comment(body=f"{payload}\n\nnr {n}"),
                                        thread_url="/threads/xss/comments")
        assert status == 201 and executable(created["html"]) == [], (payload, created)
    page = await get(http, base, "/threads/xss/comments", limit="100")
    assert len(page["comments"]) == len(XSS)
    assert [(c["html"], executable(c["html"])) for c in page["comments"] if executable(c["html"])] == []


async def test_an_address_our_mail_server_cannot_take_is_refused_only_where_it_would_be_mailed(
        start_service, settings, config, http):
    from services.comments.app import create_app

    base = await start_service(lambda s: create_app(s, config), "comments",
                               app_settings=settings.model_copy(update={"smtp_utf8": False}))
    status, body, _ = await post(http, base, comment(email="ærlig@bærum.no", notify_replies=True))
    assert status == 422
    assert [(d["field"], d["type"]) for d in body["error"]["details"]] == [("email", "email_smtputf8")]
    status, _, _ = await post(http, base, comment(email="ærlig@bærum.no"))  # never mailed: welcome
    assert status == 201
    async with http.post(f"{base}/erasure/requests", json={"email": "ærlig@bærum.no"}) as resp:
        assert resp.status == 422 and "Bruk ei anna e-postadresse" in (await resp.json())["error"]["details"][0]["message"]


async def test_an_edit_keeps_its_time_and_is_refused_a_text_already_in_the_thread(base, http, moderator_headers):
    first = await published(http, base, moderator_headers, body="Første tekst")
    status, created, _ = await post(http, base, comment(body="Andre tekst"))
    token = {"X-Edit-Token": created["edit_token"]}
    async with http.patch(f"{base}/comments/{created['id']}", json={"body": "første  TEKST"}, headers=token) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["message"] == "Du har alt skrive akkurat denne kommentaren her."
    before = datetime.now(UTC)
    async with http.patch(f"{base}/comments/{first}", json={"body": "Retta"}, headers=token) as resp:
        assert resp.status == 403  # another comment's token
    status, mine, _ = await post(http, base, comment(body="Tredje tekst"))
    await moderate(http, base, moderator_headers, "approve", mine["id"])
    async with http.patch(f"{base}/comments/{mine['id']}", json={"body": "Tredje, retta"},
                          headers={"X-Edit-Token": mine["edit_token"]}) as resp:
        assert resp.status == 200
    await moderate(http, base, moderator_headers, "approve", mine["id"])
    edited = {c["id"]: c["edited_at"] for c in (await get(http, base))["comments"]}[mine["id"]]
    assert before <= datetime.fromisoformat(edited) <= datetime.now(UTC)  # an aware time, as written
    async with http.get(f"{base}{URL.removesuffix('/comments')}/export", headers=moderator_headers) as resp:
        assert resp.status == 200
        exported = {c["id"]: c for c in (await resp.json())["comments"]}
    assert datetime.fromisoformat(exported[mine["id"]]["edited_at"]) == datetime.fromisoformat(edited)
