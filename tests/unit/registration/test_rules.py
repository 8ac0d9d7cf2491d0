"""Rules for questions, guests, capacity, erasure, idempotency and the CSV export (pure, no I/O)."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from services.registration import domain
from services.registration.domain import GuestInvite, OrganisationType, Refused, RequestRecord, Status

from .documents import NOW, event, registration

QUESTIONS = [
    {"id": "tema", "text": "Tema", "kind": "text", "options": [], "required": True},
    {"id": "diett", "text": "Diett", "kind": "single_choice", "options": ["vegan", "ingen"], "required": False},
    {"id": "økt", "text": "Økter", "kind": "multiple_choice", "options": ["a", "b"], "required": False},
]


def fields(problems: list[dict]) -> list[str]:
    return [p["field"] for p in problems]


def test_answers_that_fit_have_no_problems():
    assert domain.answer_problems(QUESTIONS, {"tema": "x", "diett": "vegan", "økt": ["a", "b"]}) == []
    assert domain.answer_problems(QUESTIONS, {"tema": "x", "diett": "", "økt": []}) == []


@pytest.mark.parametrize("answers, field", [
    ({}, "answers.tema"),
    ({"tema": "x", "diett": "kjøt"}, "answers.diett"),
    ({"tema": "x", "økt": "a"}, "answers.økt"),
    ({"tema": ["x"]}, "answers.tema"),
    ({"tema": "x", "anna": "y"}, "answers.anna"),
])
def test_answers_that_do_not_fit(answers, field):
    assert fields(domain.answer_problems(QUESTIONS, answers)) == [field]


def test_who_may_invite_a_guest():
    one_guest = event(guests_per_municipality=1)
    domain.check_can_invite(registration(), one_guest, "gjest@example.no")
    domain.check_can_invite(registration(status=Status.checked_in), one_guest, "gjest@example.no")
    for reg, ev, email, words in [
        (registration(status=Status.waitlisted), one_guest, "g@example.no", "stadfesta plass"),
        (registration(municipality=None), one_guest, "g@example.no", "frå ein kommune"),
        (registration(), event(guests_per_municipality=0), "g@example.no", "tek ikkje imot"),
        (registration(), one_guest, "kari@baerum.no", "ein annan enn deg"),
    ]:
        with pytest.raises(Refused) as refused:
            domain.check_can_invite(reg, ev, email)
        assert words in refused.value.message


def test_an_invite_brings_its_own_guest_from_outside():
    invite = GuestInvite(event_slug="jam", guest_email="g@example.no", municipality="3201", municipality_name="Bærum",
                         inviter_id="r1", code_hash="h", created_at=NOW)
    domain.check_guest(invite, "jam", "g@example.no", {"number": "3203", "name": "Asker"})
    domain.check_guest(invite, "jam", "g@example.no", None)
    for args, words in [
        ((None, "jam", "g@example.no", None), "ikkje gyldig"),
        ((invite, "anna", "g@example.no", None), "ikkje gyldig"),
        ((invite, "jam", "h@example.no", None), "anna e-postadresse"),
        ((invite, "jam", "g@example.no", {"number": "3201", "name": "Bærum"}), "utanfor Bærum"),
    ]:
        with pytest.raises(Refused) as refused:
            domain.check_guest(*args)
        assert words in refused.value.message


def test_capacity_cannot_fall_below_the_seats_held():
    three_seated = event(seats=["a", "b", "c"], capacity=5)
    domain.check_capacity(three_seated, 3)
    with pytest.raises(Refused, match=r"\(3\)"):
        domain.check_capacity(three_seated, 2)


def test_only_real_changes_count():
    assert domain.changes(event(venue="Sandvika", capacity=5), {"venue": "Sandvika", "capacity": 6}) == {"capacity": 6}


def test_retention_ends_retention_days_after_the_event():
    ended = event(starts_at=NOW - timedelta(hours=6), ends_at=NOW, retention_days=30)
    assert not domain.retention_over(ended, NOW + timedelta(days=29))
    assert domain.retention_over(ended, NOW + timedelta(days=30))


def test_registration_ids_sort_in_arrival_order_and_are_unguessable():
    ids = [domain.new_registration_id() for _ in range(50)]
    times = [i[:12] for i in ids]
    assert times == sorted(times)  # the time part leads, so ids made later sort later
    assert len(set(ids)) == 50 and all(len(i) == 32 for i in ids)


def test_idempotency_replays_only_the_same_finished_request():
    done = RequestRecord("f", {"status": 201})
    assert domain.replay(done, "f") == {"status": 201}
    with pytest.raises(Refused) as other:
        domain.replay(done, "g")
    assert other.value.status == 422
    with pytest.raises(Refused) as in_flight:
        domain.replay(RequestRecord("f"), "f")
    assert in_flight.value.status == 409
    assert domain.fingerprint("a", b"b") != domain.fingerprint("ab", b"")


def test_csv_has_bom_norwegian_headers_answers_and_defused_formulas():
    jam = event(questions=QUESTIONS[1:], seats=["r1"], waitlist=["r2"])
    rows = [registration(organisation_type=OrganisationType.kommune, answers={"diett": "vegan", "økt": ["a", "b"]}),
            registration(id="r2", status=Status.waitlisted, name="+SUM(A1)", email="x@example.no",
                         organisation="@firma", municipality=None)]
    text = domain.registrations_csv(jam, rows)
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert table[0] == domain.CSV_COLUMNS + ["Diett", "Økter"]
    assert table[1][:5] == ["Kari", "kari@baerum.no", "", "Bærum kommune", "kommune"]
    assert table[1][-2:] == ["vegan", "a, b"] and table[1][9] == "27. november 2026 kl. 13:00"
    assert table[1][5:9] == ["3201", "Bærum", "confirmed", ""]
    assert table[2][0] == "'+SUM(A1)" and table[2][3] == "'@firma" and table[2][8] == "1"


def test_own_data_holds_everything_personal_but_no_secrets():
    data = domain.own_data(registration(token_hashes=["h"], phone="123"), event())
    assert data["name"] == "Kari" and data["phone"] == "123" and data["event"] == {"slug": "jam", "title": "Jam"}
    assert "token_hashes" not in data


def test_a_registration_id_tells_when_it_was_made():
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    made = domain.created_at(domain.new_registration_id())
    assert before <= made <= datetime.now(UTC)
