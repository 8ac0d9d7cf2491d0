"""How store.py stores the domain's types and reads them back (pure: no store). What the stand-in store needs
stays in the stored document; the domain object read back is the one written."""

from datetime import timedelta

from services.registration import store
from services.registration.domain import EventStatus, GuestInvite, OrganisationType, Status
from shared.messages import Language

from .documents import NOW, event, registration

# What insert_event adds beside the event itself.
COUNTERS = {"free": 1, "version": 3, "places_version": 7}


def test_an_event_keeps_its_times_in_a_schedule_and_reads_back_as_written():
    written = event(seats=["r1"], registration_closes_at=NOW + timedelta(days=1))
    doc = store.event_to_doc(written)
    assert doc["_id"] == "jam" and "slug" not in doc and "revision" not in doc
    assert doc["schedule"] == {"starts_at": written.starts_at, "ends_at": written.ends_at,
                               "registration_opens_at": None, "registration_closes_at": NOW + timedelta(days=1)}
    assert not {"starts_at", "ends_at", "final_counts", "created_by"} & set(doc)  # times nested, None left out
    read = store.event_from_doc({**doc, **COUNTERS, "outbox": [], "outbox_due": 1.0})
    assert read == written
    assert (read.status, read.language) == (EventStatus.published, Language.nn)
    assert read.revision == store.Revision(free=1, version=3, places_version=7)


def test_an_event_stored_before_schedule_and_places_version_still_reads():
    doc = {**store.event_to_doc(event()), "free": 2, "version": 0}
    schedule = doc.pop("schedule")
    read = store.event_from_doc({**doc, **schedule})
    assert (read.starts_at, read.revision.places_version) == (schedule["starts_at"], None)


def test_a_registration_reads_back_as_written_without_what_only_the_store_keeps():
    written = registration(status=Status.cancelled, cancelled_from=Status.waitlisted,
                           organisation_type=OrganisationType.kommune, answers={"diett": "vegan"})
    doc = store.registration_to_doc(written)
    assert doc["_id"] == "r1" and "id" not in doc
    assert not {"phone", "position", "expires_at", "guest_of"} & set(doc)  # None left out
    read = store.registration_from_doc({**doc, "live_email": "kari@baerum.no", "updated_ts": 1.0, "outbox": []})
    assert read == written
    assert (read.status, read.cancelled_from, read.organisation_type, read.language) == (
        Status.cancelled, Status.waitlisted, OrganisationType.kommune, Language.nn)


def test_an_erased_registration_reads_with_its_personal_fields_empty():
    doc = {k: v for k, v in store.registration_to_doc(registration(status=Status.erased)).items()
           if k not in ("name", "organisation", "municipality", "answers", "consent", "token_hashes")}
    read = store.registration_from_doc(doc)
    assert (read.name, read.municipality, read.answers, read.token_hashes) == (None, None, {}, [])


def test_an_unclaimed_guest_code_is_stored_as_an_empty_claim():
    invite = GuestInvite(event_slug="jam", municipality="3201", municipality_name="Bærum", inviter_id="r1",
                         guest_email="gjest@example.no", code_hash="h", created_at=NOW)
    doc = store.invite_to_doc(invite, "jam/3201/0")
    assert (doc["_id"], doc["used_by"]) == ("jam/3201/0", "")
    assert store.invite_from_doc({**doc, "outbox": []}) == invite
    claimed = store.invite_from_doc({**doc, "used_by": "r9", "claim_ts": 1.0})
    assert claimed.used_by == "r9"
