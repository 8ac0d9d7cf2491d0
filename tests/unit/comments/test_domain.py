"""Pure comment rules: no store, no broker."""

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.comments import domain, models, store
from services.comments.domain import Action, BadCursor, BadToken, Purpose, Sort
from services.comments.models import NewComment
from shared.messages.comments import CommentStatus
from shared.messages.common import Language
from tests.unit.comments.xss import XSS, executable

@pytest.mark.parametrize("payload", XSS)
def test_no_payload_comes_back_executable(payload):
    assert executable(domain.render(payload)) == []


def test_the_xss_check_itself_catches_what_it_should():
    assert executable('<p><a href=" java&#x09;script:x" onclick="y">x</a><img src=x></p>') == [
        "href  java\tscript:x", "attribute onclick", "tag img", "attribute src"]


def test_safe_markdown_renders_with_nofollow_links():
    html = domain.render("*Hei* **alle**\n\n> sitat\n\n- ein\n- to\n\n`kode` [Difi](https://difi.no)")
    for fragment in ("<em>Hei</em>", "<strong>alle</strong>", "<blockquote>", "<li>ein</li>", "<code>kode</code>",
                     '<a href="https://difi.no" rel="nofollow ugc">Difi</a>'):
        assert fragment in html


def test_excerpt_is_plain_text_cut_at_a_word():
    html = domain.render("**Hei** & velkomen " + "ord " * 100)
    text = domain.excerpt(html, 30)
    assert text.startswith("Hei & velkomen") and text.endswith(" …") and "<" not in text and len(text) <= 32


def test_links_are_counted_in_the_source():
    assert domain.count_links("sjå https://a.no og www.b.no og [c](http://c.no)") == 3
    assert domain.count_links("ingen lenker her") == 0


def test_same_text_with_other_case_or_spacing_has_the_same_fingerprint():
    assert domain.fingerprint("Hei  alle\n") == domain.fingerprint("hei alle")
    assert domain.fingerprint("hei alle") != domain.fingerprint("hei alle!")


@pytest.mark.parametrize("moderation,links,honeypot,known,auto,expected", [
    ("pre", 0, False, False, False, (CommentStatus.pending, "pre_moderation")),
    ("post", 0, False, False, False, (CommentStatus.approved, None)),
    ("post", 3, False, False, False, (CommentStatus.pending, "too_many_links")),
    ("pre", 0, True, False, False, (CommentStatus.spam, None)),
    ("post", 0, True, True, True, (CommentStatus.spam, None)),
    ("pre", 0, False, True, True, (CommentStatus.approved, None)),
    ("pre", 0, False, True, False, (CommentStatus.pending, "pre_moderation")),
    ("pre", 3, False, True, True, (CommentStatus.pending, "too_many_links")),
])
def test_initial_status(moderation, links, honeypot, known, auto, expected):
    assert domain.initial_status(moderation=moderation, links=links, max_links=2, honeypot=honeypot,
                                 known_author=known, auto_approve_known=auto) == expected


def test_transitions():
    assert domain.TRANSITIONS[Action.approve] == (
        CommentStatus.approved, {CommentStatus.pending, CommentStatus.rejected, CommentStatus.spam})
    assert CommentStatus.deleted not in domain.TRANSITIONS[Action.delete][1]
    assert CommentStatus.approved not in domain.TRANSITIONS[Action.approve][1]


def test_listed_means_approved_or_a_deleted_placeholder_with_replies():
    assert domain.listed(CommentStatus.approved, False)
    assert domain.listed(CommentStatus.deleted, True)
    assert not domain.listed(CommentStatus.deleted, False)
    assert not domain.listed(CommentStatus.pending, True)


def _comment(parent: domain.Comment | None = None, status=CommentStatus.approved, **fields) -> domain.Comment:
    now = datetime.now(UTC)
    new = NewComment(author_name="Ola", email="ola@example.no", body="Ein kommentar")
    comment = domain.new_comment("t", new, id=store.new_id(now), parent=parent, max_depth=2, status=status,
                                 ip="10.0.0.1", now=now)
    return replace(comment, **fields)


def test_replies_deeper_than_allowed_attach_to_the_deepest_allowed_parent():
    top = _comment()
    reply = _comment(top)
    assert (reply.parent_id, reply.root_id, reply.depth, reply.reply_to) == (top.id, top.id, 1, top.id)
    deepest = _comment(reply)
    assert (deepest.parent_id, deepest.root_id, deepest.depth) == (reply.id, top.id, 2)
    beyond = _comment(deepest)
    assert (beyond.parent_id, beyond.root_id, beyond.depth, beyond.reply_to) == (reply.id, top.id, 2, deepest.id)
    assert domain.placement(None, 2) == {"parent_id": None, "root_id": None, "depth": 0}


def test_nesting_shows_up_to_the_limit_and_counts_the_rest():
    root = _comment()
    replies = [_comment(root) for _ in range(4)]
    grandchild = _comment(replies[0])
    deleted_root = _comment(status=CommentStatus.deleted)
    [tree, placeholder] = models.nest([root, deleted_root], [grandchild, *reversed(replies)], 3, Language.nn)
    assert [r.id for r in tree.replies] == [r.id for r in replies[:3]]
    assert tree.hidden_replies == 1
    assert tree.replies[0].replies[0].id == grandchild.id
    assert placeholder.deleted and placeholder.author_name == "" and "sletta" in placeholder.html


def test_public_view_has_no_email_ip_or_token():
    view = models.public(_comment(email="a@b.no", ip="10.0.0.1", fingerprint="f"), Language.nn)
    dumped = view.model_dump_json()
    assert "a@b.no" not in dumped and "10.0.0.1" not in dumped and "email" not in dumped


@pytest.mark.parametrize("sort", list(Sort))
def test_cursor_round_trip(sort):
    comment = _comment(reply_count=3)
    cursor = domain.encode_cursor(sort, comment)
    assert domain.decode_cursor(sort, cursor) == [getattr(comment, f) for f, _ in domain.SORT_KEYS[sort]]


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", domain.encode_cursor(Sort.oldest, _comment()),
                                    "WyJuZXdlc3QiLHsiJGd0IjoiIn1d"])  # the last: ["newest",{"$gt":""}]
def test_bad_cursors_are_refused(cursor):
    with pytest.raises(BadCursor):
        domain.decode_cursor(Sort.newest, cursor)


SECRET = "unit-test-secret-that-is-long-enough"


def test_edit_token_is_bound_to_comment_and_purpose_and_expires():
    now = datetime.now(UTC)
    token = domain.sign(SECRET, Purpose.edit, "c1", timedelta(minutes=15), now)
    assert domain.verify(SECRET, Purpose.edit, token, "c1") == domain.verify(SECRET, Purpose.edit, token) == "c1"
    for purpose, subject, secret in [(Purpose.unsubscribe, "c1", SECRET), (Purpose.edit, "c2", SECRET),
                                     (Purpose.edit, "c1", SECRET + "x")]:
        with pytest.raises(BadToken):
            domain.verify(secret, purpose, token, subject)
    expired = domain.sign(SECRET, Purpose.edit, "c1", timedelta(minutes=15), now - timedelta(minutes=16))
    with pytest.raises(BadToken):
        domain.verify(SECRET, Purpose.edit, expired, "c1")
    with pytest.raises(BadToken):
        domain.verify(SECRET, Purpose.edit, None, "c1")


@pytest.mark.parametrize("header,expected", [
    (None, Language.nn), ("nb-NO,nb;q=0.9", Language.nb), ("en-GB", Language.en), ("de, nn;q=0.5", Language.nn),
    ("no", Language.nb), ("fr", Language.nn)])
def test_language_from_accept_language(header, expected):
    assert domain.language_of(header) == expected


def test_every_text_exists_in_every_language():
    assert all(set(variants) == set(Language) for variants in domain.TEXT.values())


def test_new_comment_validation_gives_a_norwegian_message_per_field():
    with pytest.raises(ValidationError) as caught:
        NewComment.model_validate({"author_name": "  ", "email": "ikkje-epost", "body": " x "})
    messages = {err["loc"][0]: err["msg"] for err in caught.value.errors()}
    assert messages == {"author_name": "Skriv namnet ditt.",
                        "email": "Skriv ei gyldig e-postadresse, til dømes namn@eksempel.no.",
                        "body": "Skriv ein kommentar på minst 2 teikn."}


def test_new_comment_normalises_name_and_email():
    comment = NewComment.model_validate({"author_name": " Kari   Nordmann ", "email": "Kari@Example.NO",
                                         "body": "  Hei  "})
    assert (comment.author_name, comment.email, comment.body) == ("Kari Nordmann", "kari@example.no", "Hei")


def test_erasure_anonymises_and_drops_contact_data():
    assert domain.anonymised() == {"author_name": "Anonym", "notify_replies": False, "erased": True, "email": None,
                                   "ip": None}


def test_deleting_drops_the_text_and_gives_the_fingerprint_back():
    deleted = _comment(status=CommentStatus.deleted)
    assert (deleted.body, deleted.html, deleted.fingerprint, deleted.listed) == ("", "", None, False)
    assert _comment().fingerprint == domain.fingerprint("Ein kommentar")


def test_import_rebuilds_structure_counts_and_placeholders_with_ids_of_the_thread():
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)

    def item(id, reply_to=None, status=CommentStatus.approved, minutes=0, body=None):
        return models.ExportedComment(id=id, reply_to=reply_to, author_name="Ola", email="ola@example.no",
                                      body="" if body is None and status == CommentStatus.deleted else body or f"tekst {id}",
                                      status=status, created_at=at + timedelta(minutes=minutes))

    items = [item("c", "b", minutes=2), item("a", status=CommentStatus.deleted), item("b", "a", minutes=1),
             item("d", "c", minutes=3), item("orphan", "missing", minutes=4)]
    comments = domain.imported("ny", items, max_depth=2, imported_id=store.imported_id)
    by_body = {c.body.removeprefix("tekst ") or "deleted": c for c in comments}
    a, b, c, d = (by_body[k] for k in ("deleted", "b", "c", "d"))
    assert a.listed and a.reply_count == 3 and a.fingerprint is None  # placeholder above its replies
    assert (b.parent_id, c.parent_id, d.parent_id) == (a.id, b.id, b.id)
    assert d.depth == 2 and d.reply_to == c.id and d.root_id == a.id
    assert by_body["orphan"].depth == 0 and by_body["orphan"].parent_id is None
    assert [(x.thread_id, x.created_at) for x in (a, b, c, d)] == [("ny", at + timedelta(minutes=n)) for n in range(4)]
    assert sorted(x.id for x in (a, b, c, d)) == [a.id, b.id, c.id, d.id]  # ids sort in creation order
    assert [x.id for x in domain.imported("ny", items, 2, store.imported_id)] == [x.id for x in comments]
    assert not {x.id for x in domain.imported("annan", items, 2, store.imported_id)} & {x.id for x in comments}


@pytest.mark.parametrize("status,moderation,links,auto,expected", [
    (CommentStatus.pending, "pre", 0, False, (CommentStatus.pending, None)),
    (CommentStatus.approved, "pre", 0, False, (CommentStatus.pending, "pre_moderation")),
    (CommentStatus.approved, "pre", 0, True, (CommentStatus.approved, None)),
    (CommentStatus.approved, "post", 0, False, (CommentStatus.approved, None)),
    (CommentStatus.approved, "post", 3, True, (CommentStatus.pending, "too_many_links")),
])
def test_an_edited_comment_is_vetted_again_where_new_ones_are(status, moderation, links, auto, expected):
    assert domain.status_after_edit(status, moderation=moderation, links=links, max_links=2,
                                    auto_approve_known=auto) == expected


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'["most_replied", 9223372036854775808, "' + b"0" * 24
                                 + b'"]', b'["most_replied", true, "' + b"0" * 24 + b'"]'])
def test_a_cursor_too_deep_or_out_of_range_is_bad_not_a_crash(raw):
    with pytest.raises(domain.BadCursor):
        domain.decode_cursor(domain.Sort.most_replied, base64.urlsafe_b64encode(raw).decode())
