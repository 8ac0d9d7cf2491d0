"""Use cases of services/comments/service.py run over the in-memory store, rate limits (fakes.py) and outbox
(tests/support/fake_outbox.py): no MongoDB, no RabbitMQ, milliseconds each. What they check: what a thread shows,
what is stored, what the caller is answered and the messages published. The group commits and the per-thread
cache run as in production (the cache with a long TTL, so a write that forgot to drop it shows)."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from services.comments.cache import ThreadCache
from services.comments.config import CommentsConfig
from services.comments.consumers import erasure_handler
from services.comments.domain import Action, Sort
from services.comments.models import Created, NewComment, QueueQuery
from services.comments.service import Comments
from shared.http import ApiError
from shared.messages import make_event
from shared.messages.comments import CommentStatus
from shared.messages.common import Language
from shared.messages.registration import RegistrationErased
from shared.settings import Settings
from tests.support.fake_outbox import FakeOutbox

from .fakes import FakeRateLimits, FakeStore

THREAD = "innovasjonsjam-baerum"
MODERATOR = "moderator@baerum.kommune.no"
KARI, OLA = "kari@baerum.kommune.no", "ola@asker.kommune.no"
TEXT = "Kva med eit felles innovasjonsfond for kommunane?"


def make(**config) -> Comments:
    config = CommentsConfig(**{"moderators": [MODERATOR], "posts_per_minute": 100, "new_threads_per_hour": 100,
                               "max_links": 2, "max_depth": 2, "nested_limit": 5, "page_size": 20,
                               "auto_approve_known": False, "cache_ttl_s": 60.0, **config})
    return Comments(Settings(jwt_secret="unit-test-secret-long-enough-for-hs256"), config, FakeStore(), FakeOutbox(),
                    ThreadCache(config.cache_ttl_s), FakeRateLimits())


@pytest.fixture
def comments() -> Comments:
    return make()


@pytest.fixture
async def open_thread(comments) -> Comments:
    """A thread in post-moderation: comments are published at once."""
    await comments.change_thread(THREAD, {"moderation": "post"}, MODERATOR)
    return comments


async def post(comments: Comments, body: str = TEXT, *, thread: str = THREAD, ip: str = "10.0.0.1",
               author_name: str = "Kari Nordmann", email: str = KARI, **fields) -> Created:
    created = await comments.post(thread, NewComment(author_name=author_name, email=email, body=body, **fields),
                                  ip=ip, language=Language.nn)
    await comments.published()  # its message leaves off the request's path
    return created


async def page(comments: Comments, thread: str = THREAD, sort: Sort = Sort.newest, cursor: str | None = None,
               limit: int | None = None) -> dict:
    return json.loads(await comments.page(thread, sort, cursor, limit, Language.nn))


async def moderate(comments: Comments, ids: list[str], action: Action) -> dict[str, str]:
    results = await comments.moderate(ids, action, MODERATOR)
    await comments.published()
    return results


def messages(comments: Comments, routing_key: str) -> list[dict]:
    return comments.outbox.messages(routing_key)


def stored(comments: Comments, comment_id: str):
    return comments.store.comments[comment_id]


def token_in(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


def refused(status: int):
    """pytest.raises for a refusal with this HTTP status."""
    return pytest.raises(ApiError, check=lambda exc: exc.status == status)


# ---- writing -------------------------------------------------------------------------------------------------


async def test_a_new_comment_waits_for_a_moderator_who_is_told(comments):
    created = await post(comments)
    assert (created.status, created.message) == ("pending", "Takk! Kommentaren blir synleg når ein moderator har "
                                                            "godkjent han.")
    kept = stored(comments, created.id)
    assert (kept.status, kept.email, kept.ip, kept.listed) == (CommentStatus.pending, KARI, "10.0.0.1", False)
    assert (await page(comments))["comments"] == [] and await comments.counts([THREAD]) == {THREAD: 0}
    [submitted] = messages(comments, "comment.submitted.v1")
    assert submitted["subject"] == created.id
    assert (submitted["data"]["moderator_emails"], submitted["data"]["held_because"]) == ([MODERATOR],
                                                                                          "pre_moderation")
    assert submitted["data"]["url"].endswith(f"/comments/{created.id}#kommentar-{created.id}")
    assert messages(comments, "comment.published.v1") == []


async def test_in_post_moderation_a_comment_is_published_at_once(open_thread):
    created = await post(open_thread, "*Ja*, gjerne!")
    assert created.status == "approved" and created.html == "<p><em>Ja</em>, gjerne!</p>\n"
    [shown] = (await page(open_thread))["comments"]
    assert (shown["id"], shown["author_name"], shown["html"]) == (created.id, "Kari Nordmann", created.html)
    assert "email" not in shown and await open_thread.counts([THREAD, "tom"]) == {THREAD: 1, "tom": 0}
    [published] = messages(open_thread, "comment.published.v1")
    assert (published["data"]["comment_id"], published["data"]["excerpt"]) == (created.id, "Ja, gjerne!")
    assert published["authid"] is None and published["data"]["parent"] is None


async def test_too_many_links_hold_a_comment_even_in_post_moderation(open_thread):
    created = await post(open_thread, "Sjå https://a.no, https://b.no og https://c.no")
    assert created.status == "pending" and (await page(open_thread))["comments"] == []
    [submitted] = messages(open_thread, "comment.submitted.v1")
    assert submitted["data"]["held_because"] == "too_many_links"


async def test_a_filled_honeypot_looks_pending_but_is_kept_as_spam_silently(open_thread):
    created = await post(open_thread, website="https://spam.example")
    assert created.status == "pending"
    assert stored(open_thread, created.id).status == CommentStatus.spam
    again = await post(open_thread, website="https://spam.example")  # the bot learns nothing from a 409 either
    assert again.status == "pending" and again.id != created.id
    assert open_thread.outbox.published == [] and (await page(open_thread))["comments"] == []


async def test_an_author_with_an_approved_comment_is_published_at_once_when_so_configured():
    comments = make(auto_approve_known=True)
    first = await post(comments)
    assert first.status == "pending"
    await moderate(comments, [first.id], Action.approve)
    assert (await post(comments, "Ein ny tanke om fondet.")).status == "approved"
    assert (await post(comments, "Ein tanke frå ein ny person.", email=OLA)).status == "pending"


async def test_the_same_text_twice_in_a_thread_is_refused_but_another_thread_takes_it(comments):
    await post(comments)
    with refused(409):
        await post(comments, f"  {TEXT.upper()}\n", email=OLA)
    assert (await post(comments, thread="innovasjonsverkstad-sarpsborg")).status == "pending"
    assert [c.thread_id for c in comments.store.comments.values()] == [THREAD, "innovasjonsverkstad-sarpsborg"]


@pytest.mark.parametrize("setting", ["closed", "hidden"])
async def test_a_closed_or_hidden_thread_takes_no_comments(comments, setting):
    await post(comments)
    await comments.change_thread(THREAD, {setting: True}, MODERATOR)
    with refused(409):
        await post(comments, "Eit nytt innlegg.")
    assert len(comments.store.comments) == 1


async def test_posting_too_often_from_one_address_is_refused_with_when_to_try_again():
    comments = make(posts_per_minute=2)
    await post(comments, "Fyrste.")
    await post(comments, "Andre.")
    with refused(429) as caught:
        await post(comments, "Tredje.")
    assert caught.value.headers == {"Retry-After": "60"}
    assert (await post(comments, "Frå ei anna adresse.", ip="10.0.0.2")).status == "pending"


async def test_opening_too_many_threads_from_one_address_is_refused():
    comments = make(new_threads_per_hour=1)
    await post(comments, "I ein ny tråd.", thread="ny-1")
    with refused(429):
        await post(comments, "I endå ein ny tråd.", thread="ny-2")
    assert (await post(comments, "Meir i den fyrste.", thread="ny-1")).status == "pending"
    assert "ny-2" not in comments.store.threads


async def test_a_reply_mails_the_author_who_asked_and_counts_under_its_root(open_thread):
    kari = await post(open_thread, notify_replies=True)
    ola = await post(open_thread, "Einig, og Asker vil vere med.", author_name="Ola", email=OLA, parent_id=kari.id)
    [_, reply] = messages(open_thread, "comment.published.v1")
    parent = reply["data"]["parent"]
    assert (parent["comment_id"], parent["email"]) == (kari.id, KARI)
    assert parent["unsubscribe_url"].split("?")[0].endswith(f"/comments/{kari.id}/unsubscribe")
    [shown] = (await page(open_thread))["comments"]
    assert (shown["reply_count"], [r["id"] for r in shown["replies"]]) == (1, [ola.id])
    assert stored(open_thread, ola.id).reply_to == kari.id

    await post(open_thread, "Og eg svarar meg sjølv.", parent_id=kari.id)  # no mail to oneself
    assert messages(open_thread, "comment.published.v1")[-1]["data"]["parent"]["email"] is None


async def test_replies_nest_to_the_deepest_level_then_sit_beside_their_parent(open_thread):
    top = await post(open_thread, "Nivå 0")
    one = await post(open_thread, "Nivå 1", parent_id=top.id)
    two = await post(open_thread, "Nivå 2", parent_id=one.id)
    beside = await post(open_thread, "Svar på nivå 2", parent_id=two.id)
    assert (stored(open_thread, beside.id).parent_id, stored(open_thread, beside.id).depth) == (one.id, 2)
    [shown] = (await page(open_thread))["comments"]
    assert [r["id"] for r in shown["replies"][0]["replies"]] == [two.id, beside.id]
    assert shown["reply_count"] == 3


@pytest.mark.parametrize("parent", ["pending", "other thread", "unknown"])
async def test_a_reply_needs_a_published_parent_in_the_same_thread(comments, parent):
    if parent == "pending":
        parent_id = (await post(comments)).id
    elif parent == "other thread":
        await comments.change_thread("annan", {"moderation": "post"}, MODERATOR)
        parent_id = (await post(comments, thread="annan")).id
    else:
        parent_id = "0123456789abcdef01234567"
    with refused(422) as caught:
        await post(comments, "Eit svar.", parent_id=parent_id)
    assert caught.value.details[0]["field"] == "parent_id"


async def test_reply_mails_need_an_address_the_mail_server_takes():
    comments = make()
    comments.settings = Settings(jwt_secret="unit-test-secret-long-enough-for-hs256", smtp_utf8=False)
    with refused(422):
        await post(comments, email="kåre@baerum.kommune.no", notify_replies=True)
    assert (await post(comments, email="kåre@baerum.kommune.no")).status == "pending"  # no mail, no matter


# ---- reading -------------------------------------------------------------------------------------------------


async def test_a_thread_pages_by_cursor_without_gap_or_repeat(open_thread):
    ids = [(await post(open_thread, f"Kommentar nummer {n}.")).id for n in range(5)]
    for sort, expected in [(Sort.newest, ids[::-1]), (Sort.oldest, ids)]:
        seen, cursor = [], None
        while True:
            shown = await page(open_thread, sort=sort, cursor=cursor, limit=2)
            seen += [c["id"] for c in shown["comments"]]
            if not (cursor := shown["next_cursor"]):
                break
        assert seen == expected
    with refused(400):
        await page(open_thread, cursor="bm90IGpzb24")


async def test_most_replied_comes_first(open_thread):
    quiet, busy = (await post(open_thread, "Stille.")).id, (await post(open_thread, "Travel.")).id
    await post(open_thread, "Svar.", parent_id=busy)
    assert [c["id"] for c in (await page(open_thread, sort=Sort.most_replied))["comments"]] == [busy, quiet]


async def test_a_write_shows_at_once_though_the_page_was_cached(comments):
    pending = await post(comments)
    assert (await page(comments))["comments"] == []  # cached now, for a minute
    await moderate(comments, [pending.id], Action.approve)
    assert [c["id"] for c in (await page(comments))["comments"]] == [pending.id]
    await comments.change_thread(THREAD, {"hidden": True}, MODERATOR)
    assert (await page(comments))["thread"]["hidden"] is True and (await page(comments))["comments"] == []
    assert await comments.counts([THREAD]) == {THREAD: 0}


# ---- the author's edit window and links ------------------------------------------------------------------------


async def test_the_author_edits_with_the_edit_token_and_a_published_comment_is_vetted_again(comments):
    created = await post(comments)
    await moderate(comments, [created.id], Action.approve)
    edited = await comments.edit(created.id, "Kva med eit **felles** fond?", created.edit_token, Language.nn)
    assert (edited.status, edited.html) == ("pending", "<p>Kva med eit <strong>felles</strong> fond?</p>\n")
    kept = stored(comments, created.id)
    assert kept.body == "Kva med eit **felles** fond?" and kept.edited_at is not None and not kept.listed
    assert (await page(comments))["comments"] == []  # pre-moderation holds it again
    assert [m["data"]["comment_id"] for m in messages(comments, "comment.submitted.v1")] == [created.id, created.id]


async def test_in_post_moderation_an_edit_stays_published_and_shows_when(open_thread):
    created = await post(open_thread)
    before = len(open_thread.outbox.published)
    edited = await open_thread.edit(created.id, "Endra tekst.", created.edit_token, Language.nn)
    assert edited.status == "approved"
    [shown] = (await page(open_thread))["comments"]
    assert shown["html"] == "<p>Endra tekst.</p>\n" and shown["edited_at"] is not None
    assert len(open_thread.outbox.published) == before  # nothing new to tell


async def test_only_the_comments_own_edit_token_edits_or_deletes_it(comments):
    kari, ola = await post(comments), await post(comments, "Olas tekst.", email=OLA)
    for token in (ola.edit_token, None, kari.edit_token + "x"):
        with refused(403):
            await comments.edit(kari.id, "Kapra.", token, Language.nn)
        with refused(403):
            await comments.delete_own(kari.id, token, Language.nn)
    assert stored(comments, kari.id).body == TEXT
    with refused(404):
        await comments.edit("0123456789abcdef01234567", "Kven?", kari.edit_token, Language.nn)


async def test_an_edit_to_a_text_already_in_the_thread_is_refused(comments):
    await post(comments)  # Kari's, with TEXT
    ola = await post(comments, "Olas tekst.", email=OLA)
    with refused(409):
        await comments.edit(ola.id, TEXT, ola.edit_token, Language.nn)
    assert stored(comments, ola.id).body == "Olas tekst."


async def test_the_author_deletes_and_a_placeholder_stays_above_the_replies(open_thread):
    kari = await post(open_thread)
    ola = await post(open_thread, "Eit svar.", email=OLA, parent_id=kari.id)
    await open_thread.delete_own(kari.id, kari.edit_token, Language.nn)
    await open_thread.published()
    kept = stored(open_thread, kari.id)
    assert (kept.status, kept.body, kept.html, kept.deleted_by) == (CommentStatus.deleted, "", "", "author")
    [shown] = (await page(open_thread))["comments"]
    assert shown["deleted"] and shown["author_name"] == "" and [r["id"] for r in shown["replies"]] == [ola.id]
    [deleted] = messages(open_thread, "comment.deleted.v1")
    assert (deleted["data"]["by"], deleted["data"]["placeholder"], deleted["authid"]) == ("author", True, None)

    await open_thread.delete_own(kari.id, kari.edit_token, Language.nn)  # twice is fine, and says nothing more
    assert len(messages(open_thread, "comment.deleted.v1")) == 1
    with refused(409):
        await open_thread.edit(kari.id, "Tilbake?", kari.edit_token, Language.nn)
    assert (await post(open_thread)).status == "approved"  # the deleted text may be written again


async def test_a_deleted_comment_without_replies_leaves_the_thread(open_thread):
    kari = await post(open_thread)
    await open_thread.delete_own(kari.id, kari.edit_token, Language.nn)
    assert (await page(open_thread))["comments"] == []


async def test_the_link_in_a_reply_notice_stops_reply_mails(open_thread):
    kari = await post(open_thread, notify_replies=True)
    await post(open_thread, "Fyrste svar.", email=OLA, parent_id=kari.id)
    url = messages(open_thread, "comment.published.v1")[-1]["data"]["parent"]["unsubscribe_url"]
    with refused(403):
        await open_thread.unsubscribe(kari.id, kari.edit_token, Language.nn)  # an edit token is no unsubscribe token
    await open_thread.unsubscribe(kari.id, token_in(url), Language.nn)
    assert stored(open_thread, kari.id).notify_replies is False
    await post(open_thread, "Andre svar.", email=OLA, parent_id=kari.id)
    assert messages(open_thread, "comment.published.v1")[-1]["data"]["parent"]["email"] is None


# ---- erasure ---------------------------------------------------------------------------------------------------


async def test_an_author_anonymises_their_comments_with_the_mailed_link(open_thread):
    first = await post(open_thread)
    await post(open_thread, "Ein tanke til.", email=KARI)
    ola = await post(open_thread, "Olas tekst.", author_name="Ola", email=OLA)

    await open_thread.request_erasure("ingen@example.no", Language.nb, ip="10.0.0.9", language=Language.nn)
    await open_thread.request_erasure(KARI, Language.nb, ip="10.0.0.9", language=Language.nn)
    await open_thread.published()
    [requested] = messages(open_thread, "comment.erasure_requested.v1")  # only for an address with comments
    assert (requested["data"]["email"], requested["data"]["comment_count"]) == (KARI, 2)
    assert parse_qs(urlparse(requested["data"]["erase_url"]).query)["lang"] == ["nb"]
    token = token_in(requested["data"]["erase_url"])

    assert (await open_thread.preview_erasure(token, Language.nn)).comments == 2
    assert stored(open_thread, first.id).author_name == "Kari Nordmann"  # looking changes nothing
    with refused(403):
        await open_thread.erase_by_link(first.edit_token, Language.nn)
    assert await open_thread.erase_by_link(token, Language.nn) == 2
    kept = stored(open_thread, first.id)
    assert (kept.author_name, kept.email, kept.ip, kept.erased, kept.body) == ("Anonym", None, None, True, TEXT)
    assert stored(open_thread, ola.id).email == OLA
    assert sorted(c["author_name"] for c in (await page(open_thread))["comments"]) == ["Anonym", "Anonym", "Ola"]
    assert await open_thread.erase_by_link(token, Language.nn) == 0


async def test_an_erasure_in_registration_anonymises_the_persons_comments_once(comments):
    created = await post(comments, notify_replies=True)
    on_erased = erasure_handler(comments)
    event = make_event(RegistrationErased(registration_id="r1", event_slug="innovasjonsjam-baerum",
                                          email=KARI.upper(), reason="request"), source="/test/registration")
    for _ in range(2):  # a redelivery changes nothing more
        await on_erased(event)
    kept = stored(comments, created.id)
    assert (kept.author_name, kept.email, kept.notify_replies) == ("Anonym", None, False)
    assert await comments.erase(KARI) == 0


async def test_client_ips_are_forgotten_after_the_retention_time():
    comments = make(ip_retention_days=30)
    old, new = await post(comments, "Gammal."), await post(comments, "Ny.")
    comments.store.comments[old.id].created_at -= timedelta(days=31)
    assert await comments.forget_ips() == 1
    assert (stored(comments, old.id).ip, stored(comments, new.id).ip) == (None, "10.0.0.1")
    assert stored(comments, old.id).body == "Gammal."


# ---- moderation ------------------------------------------------------------------------------------------------


async def test_moderators_approve_reject_mark_as_spam_and_delete_naming_themselves(comments):
    a, b, c, d = [(await post(comments, f"Kommentar {n}.")).id for n in "abcd"]
    results = await moderate(comments, [a, b, c, d, a], Action.approve)
    assert results == {a: "approved", b: "approved", c: "approved", d: "approved"}  # each id once
    assert await moderate(comments, [b], Action.reject) == {b: "rejected"}
    assert await moderate(comments, [c], Action.spam) == {c: "spam"}
    assert await moderate(comments, [d], Action.delete) == {d: "deleted"}
    assert await moderate(comments, [a, "0123456789abcdef01234567"], Action.approve) == {
        a: "unchanged", "0123456789abcdef01234567": "not_found"}

    kept = stored(comments, b)
    assert (kept.status, kept.moderated_by, kept.listed) == (CommentStatus.rejected, MODERATOR, False)
    assert kept.moderated_at is not None
    assert [c["id"] for c in (await page(comments))["comments"]] == [a]
    assert [(m["subject"], m["authid"]) for m in messages(comments, "comment.published.v1")] == [
        (a, MODERATOR), (b, MODERATOR), (c, MODERATOR), (d, MODERATOR)]
    assert [(m["data"]["status"], m["authid"]) for m in messages(comments, "comment.rejected.v1")] == [
        ("rejected", MODERATOR), ("spam", MODERATOR)]
    [deleted] = messages(comments, "comment.deleted.v1")
    assert (deleted["data"]["by"], deleted["authid"], deleted["data"]["placeholder"]) == ("moderator", MODERATOR, False)


async def test_of_two_moderators_deciding_at_once_the_first_decides(comments):
    created = await post(comments)
    read_by_both = await comments.store.get(created.id)
    assert (await comments.apply(read_by_both, Action.approve, actor=MODERATOR)).status == CommentStatus.approved
    assert await comments.apply(read_by_both, Action.reject, actor="annan@baerum.kommune.no") is None
    await comments.published()
    assert (stored(comments, created.id).status, stored(comments, created.id).moderated_by) == (
        CommentStatus.approved, MODERATOR)
    assert len(messages(comments, "comment.published.v1")) == 1 and messages(comments, "comment.rejected.v1") == []


async def test_approving_and_rejecting_a_reply_keeps_its_roots_count(comments):
    top = await post(comments)
    await moderate(comments, [top.id], Action.approve)
    reply = await post(comments, "Eit svar.", email=OLA, parent_id=top.id)
    assert stored(comments, top.id).reply_count == 0  # pending replies do not count
    await moderate(comments, [reply.id], Action.approve)
    assert stored(comments, top.id).reply_count == 1
    await moderate(comments, [reply.id], Action.reject)
    assert stored(comments, top.id).reply_count == 0


async def test_the_queue_is_oldest_first_paged_and_shows_the_address(comments):
    ids = [(await post(comments, f"Ventar {n}.", email=f"person{n}@baerum.kommune.no")).id for n in range(3)]
    first = await comments.queue(QueueQuery(limit=2), Language.nn)
    assert [c.id for c in first.comments] == ids[:2] and first.comments[0].email == "person0@baerum.kommune.no"
    rest = await comments.queue(QueueQuery(limit=2, cursor=first.next_cursor), Language.nn)
    assert [c.id for c in rest.comments] == ids[2:] and rest.next_cursor is None
    await moderate(comments, ids[:1], Action.approve)
    [approved] = (await comments.queue(QueueQuery(status=CommentStatus.approved), Language.nn)).comments
    assert (approved.id, approved.moderated_by) == (ids[0], MODERATOR)
    with refused(400):
        await comments.queue(QueueQuery(cursor="bm90IGpzb24"), Language.nn)


async def test_thread_settings_are_kept_with_who_changed_them(comments):
    info = await comments.change_thread(THREAD, {"closed": True, "moderation": "post"}, MODERATOR)
    assert (info.id, info.closed, info.hidden, info.moderation) == (THREAD, True, False, "post")
    kept = comments.store.threads[THREAD]
    assert (kept.closed, kept.updated_by) == (True, MODERATOR)
    assert (await page(comments))["thread"] == {"id": THREAD, "closed": True, "hidden": False, "moderation": "post"}


# ---- export and import ----------------------------------------------------------------------------------------


async def thread_with_every_shape(comments: Comments) -> dict[str, str]:
    """A published comment with a reply, a deleted one kept above its reply, and one waiting."""
    top = await post(comments, "Toppen.", notify_replies=True)
    reply = await post(comments, "Svar på toppen.", email=OLA, parent_id=top.id)
    gone = await post(comments, "Skal bort.")
    kept_reply = await post(comments, "Svar på det som går.", email=OLA, parent_id=gone.id)
    await comments.delete_own(gone.id, gone.edit_token, Language.nn)
    await comments.change_thread(THREAD, {"moderation": "pre"}, MODERATOR)
    waiting = await post(comments, "Ventar.")
    return {"top": top.id, "reply": reply.id, "gone": gone.id, "kept_reply": kept_reply.id, "waiting": waiting.id}


async def test_export_and_import_move_a_thread_with_its_shape(open_thread):
    ids = await thread_with_every_shape(open_thread)
    exported = await open_thread.export_thread(THREAD)
    assert exported.thread.moderation == "pre"
    assert [(c.id, c.status, c.reply_to) for c in exported.comments] == [
        (ids["top"], "approved", None), (ids["reply"], "approved", ids["top"]), (ids["gone"], "deleted", None),
        (ids["kept_reply"], "approved", ids["gone"]), (ids["waiting"], "pending", None)]

    imported = await open_thread.import_thread("kopi", exported.comments, MODERATOR)
    assert (imported.imported, imported.skipped) == (5, 0)
    copies = [c for c in open_thread.store.comments.values() if c.thread_id == "kopi"]
    assert {c.imported_by for c in copies} == {MODERATOR} and not {c.id for c in copies} & set(ids.values())
    shown = (await page(open_thread, "kopi", sort=Sort.oldest))["comments"]
    assert [(c["html"], c["deleted"], c["reply_count"], [r["html"] for r in c["replies"]]) for c in shown] == [
        ("<p>Toppen.</p>\n", False, 1, ["<p>Svar på toppen.</p>\n"]),
        ("<p>Kommentaren er sletta.</p>", True, 1, ["<p>Svar på det som går.</p>\n"])]
    assert open_thread.outbox.messages("comment.published.v1")[-1]["data"]["comment_id"] == ids["kept_reply"]


async def test_importing_the_same_export_again_adds_nothing(open_thread):
    ids = await thread_with_every_shape(open_thread)
    await moderate(open_thread, [ids["waiting"]], Action.spam)
    exported = await open_thread.export_thread(THREAD)
    await open_thread.import_thread("kopi", exported.comments, MODERATOR)

    def copies() -> dict[str, str]:
        return {c.id: c.status for c in open_thread.store.comments.values() if c.thread_id == "kopi"}

    # A deleted or spam comment keeps no fingerprint, and a copy deleted since the import has lost its own.
    [top] = [c.id for c in open_thread.store.comments.values() if c.thread_id == "kopi" and c.body == "Toppen."]
    await moderate(open_thread, [top], Action.delete)
    before = copies()
    again = await open_thread.import_thread("kopi", exported.comments, MODERATOR)
    assert (again.imported, again.skipped) == (0, 5) and copies() == before
    elsewhere = await open_thread.import_thread("kopi-2", exported.comments, MODERATOR)
    assert (elsewhere.imported, elsewhere.skipped) == (5, 0)
    # Nor does an export imported into the thread it came from: its comments are those of the thread.
    in_place = {c.id: c.status for c in open_thread.store.comments.values() if c.thread_id == THREAD}
    itself = await open_thread.import_thread(THREAD, exported.comments, MODERATOR)
    assert (itself.imported, itself.skipped) == (0, 5)
    assert {c.id: c.status for c in open_thread.store.comments.values() if c.thread_id == THREAD} == in_place
