"""How the store keeps comments and threads (services/comments/store.py): the domain's datetimes and id strings
one way, the documents MongoDB and nx-27017 both read alike the other. No store: the conversions only."""

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from services.comments import domain, store
from services.comments.domain import Sort
from shared.messages.comments import CommentStatus
from shared.messages.common import Language

WRITTEN = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
EDITED = datetime(2026, 5, 1, 12, 40, 15, tzinfo=UTC)


def comment(**fields) -> domain.Comment:
    return domain.Comment(**{
        "id": store.new_id(WRITTEN), "thread_id": "t", "parent_id": None, "root_id": None, "depth": 0,
        "author_name": "Kari", "email": "kari@example.no", "ip": None, "language": Language.nb, "body": "Hei",
        "html": "<p>Hei</p>", "status": CommentStatus.approved, "listed": True, "created_at": WRITTEN,
        "fingerprint": domain.fingerprint("Hei"), **fields})


def test_a_comment_is_stored_with_an_object_id_its_sortable_copy_and_later_times_in_seconds():
    kari = comment(edited_at=EDITED, reply_count=2)
    doc = store.to_doc(kari)
    assert doc["_id"] == ObjectId(kari.id) and doc["order"] == kari.id
    assert doc["edited_ts"] == EDITED.timestamp() and "edited_at" not in doc
    assert "ip" not in doc and "moderated_ts" not in doc and None not in doc.values()  # None is not stored
    assert doc["outbox"] == []
    assert store.from_doc(doc) == kari


def test_what_nx_27017_writes_back_reads_as_the_domain_has_it():
    kari = comment()
    doc = store.to_doc(kari) | {"notify_replies": 1, "listed": 0, "moderated_ts": EDITED.timestamp(),
                                "status": "rejected", "language": "nb", "outbox_due": 1.0}
    read = store.from_doc(doc)
    assert (read.notify_replies, read.listed, read.moderated_at) == (True, False, EDITED)
    assert (read.status, read.language) == (CommentStatus.rejected, Language.nb)
    assert type(read.status) is CommentStatus and type(read.notify_replies) is bool


def test_a_page_reads_only_what_it_shows():
    assert {"email", "ip", "fingerprint", "body", "outbox"}.isdisjoint(store.PAGE_FIELDS)
    doc = {field: value for field, value in store.to_doc(comment(edited_at=EDITED)).items()
           if field in store.PAGE_FIELDS or field == "_id"}
    entry = store.from_doc(doc, domain.ThreadEntry)
    assert type(entry) is domain.ThreadEntry and (entry.edited_at, entry.author_name) == (EDITED, "Kari")


def test_a_change_to_none_unsets_the_field():
    update = store.changed({"fingerprint": None, "email": None, "edited_at": EDITED, "status": CommentStatus.pending})
    assert update == {"$set": {"edited_ts": EDITED.timestamp(), "status": CommentStatus.pending},
                      "$unset": {"fingerprint": "", "email": ""}}
    assert store.changed({"notify_replies": False}) == {"$set": {"notify_replies": False}}


def test_a_thread_with_flags_written_as_numbers():
    thread = store.from_doc({"_id": "t", "closed": 1, "moderation": "post", "created_at": WRITTEN}, domain.Thread)
    assert thread == domain.Thread(id="t", closed=True, hidden=False, moderation="post", created_at=WRITTEN)


def test_the_cursor_filter_is_strictly_after_in_stored_fields():
    kari = comment(reply_count=3)

    def after(sort: Sort) -> dict:
        return store.after(sort, domain.decode_cursor(sort, domain.encode_cursor(sort, kari)))

    assert after(Sort.newest) == {"order": {"$lt": kari.id}}
    assert after(Sort.oldest) == {"order": {"$gt": kari.id}}
    assert after(Sort.most_replied) == {"$or": [{"reply_count": {"$lt": 3}},
                                                {"reply_count": 3, "order": {"$lt": kari.id}}]}
    assert store.after(Sort.newest, None) == {}
    assert store.sort_keys(Sort.most_replied) == [("reply_count", -1), ("order", -1)]


def test_ids_sort_by_their_creation_time():
    early, late = store.new_id(datetime(2020, 1, 1, tzinfo=UTC)), store.new_id(datetime(2021, 1, 1, tzinfo=UTC))
    assert early < late < store.new_id(datetime.now(UTC))
    assert store.new_id(datetime(2021, 1, 1, tzinfo=UTC)) != late
    assert ObjectId(late).generation_time == datetime(2021, 1, 1, tzinfo=UTC)


def test_an_imported_comments_id_is_its_thread_and_exported_id_dated_to_the_microsecond():
    at = datetime(2021, 1, 1, 12, 0, 0, 5000, tzinfo=UTC)
    first = store.imported_id("t", "a", at)
    assert store.imported_id("t", "a", at) == first and ObjectId(first).generation_time == at.replace(microsecond=0)
    assert len({first, store.imported_id("u", "a", at), store.imported_id("t", "b", at)}) == 3
    assert store.imported_id("t/a", "b", at) != store.imported_id("t", "a/b", at)
    assert first < store.imported_id("t", "a", at + timedelta(microseconds=1)) < store.new_id(at + timedelta(seconds=1))
