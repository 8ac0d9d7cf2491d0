from datetime import UTC, datetime, timedelta

import pytest

from services.registration import domain
from services.registration.domain import EventStatus, Refused, Status

from .documents import NOW, event


def test_emails_differing_in_case_or_spaces_are_one_person():
    assert domain.normalise_email(" Kari@Baerum.Kommune.NO ") == "kari@baerum.kommune.no"


def test_tokens_are_long_random_and_matched_only_by_their_hash():
    token = domain.new_token()
    assert len(token) >= 43 and token != domain.new_token()
    stored = domain.hash_token(token)
    assert token not in stored
    assert domain.token_matches(stored, token)
    assert not domain.token_matches(stored, token + "x")
    assert not domain.token_matches(stored, None) and not domain.token_matches(None, token)


def test_registration_is_open_inside_the_window():
    domain.check_window(event(registration_opens_at=NOW - timedelta(days=1),
                              registration_closes_at=NOW + timedelta(days=1)), NOW)


@pytest.mark.parametrize("changes, words", [
    ({"registration_opens_at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC)}, "opnar 1. desember 2026 kl. 09:00"),
    ({"registration_closes_at": NOW}, "stengd"),
    ({"starts_at": NOW - timedelta(minutes=1)}, "stengd"),
    ({"status": EventStatus.cancelled}, "avlyst"),
])
def test_registration_outside_the_window_is_refused_with_a_reason(changes, words):
    with pytest.raises(Refused) as refused:
        domain.check_window(event(**changes), NOW)
    assert words in refused.value.message and refused.value.status == 409


def test_schedule_problems_name_the_field():
    start = NOW + timedelta(days=1)
    assert domain.schedule_problems(start, start + timedelta(hours=1), None, None) == []
    assert [p["field"] for p in domain.schedule_problems(start, start, None, None)] == ["ends_at"]
    assert [p["field"] for p in domain.schedule_problems(start, start + timedelta(hours=1), start,
                                                         start - timedelta(days=1))] == ["registration_closes_at"]
    assert [p["field"] for p in domain.schedule_problems(start, start + timedelta(hours=1), None,
                                                         start + timedelta(minutes=1))] == ["registration_closes_at"]


def test_placement_seats_and_waiting_list_positions():
    doc = event(seats=["a", "b"], waitlist=["c", "d"])
    assert domain.placements(doc, ["a"]) == {"a": (Status.confirmed, None)}
    assert domain.placements(doc, ["d"]) == {"d": (Status.waitlisted, 2)}
    assert domain.placements(doc, ["x"]) == {}
    assert domain.placements(doc, ["x", "d", "a", "c"]) == {
        "a": (Status.confirmed, None), "c": (Status.waitlisted, 1), "d": (Status.waitlisted, 2)}
    assert domain.seats_left(doc) == 0 and domain.seats_left(event(seats=["a"])) == 1
    assert domain.seats_left(event(capacity=1, seats=["a", "b"])) == 0  # capacity lowered below the seats held


def test_the_first_in_line_is_promoted_only_when_a_seat_is_free_before_the_start():
    assert domain.next_in_line(event(seats=["a", "b"], waitlist=["c", "d"]), NOW) is None
    assert domain.next_in_line(event(seats=["a"], waitlist=["c", "d"]), NOW) == "c"
    assert domain.next_in_line(event(seats=["a"]), NOW) is None
    assert domain.next_in_line(event(seats=["a"], waitlist=["c"], status=EventStatus.cancelled), NOW) is None
    assert domain.next_in_line(event(seats=["a"], waitlist=["c"]), NOW + timedelta(days=8)) is None


def test_cancel_reason_says_whether_a_place_on_the_list_was_left():
    assert domain.cancel_reason(Status.waitlisted) == "left_waiting_list"
    assert domain.cancel_reason(Status.confirmed) == "participant"


def test_event_info_for_messages():
    info = domain.event_info(event(sequence=3), "https://moteplass.example")
    assert (info.slug, info.url, info.sequence) == ("jam", "https://moteplass.example/events/jam/register", 3)


def test_the_status_table_is_the_state_machine():
    moves = {(start, end) for end, starts in domain.MOVES.items() for start in starts}
    assert not any(start == Status.erased for start, _ in moves)  # erased is final
    assert {end for start, end in moves if start == Status.cancelled} == {Status.erasing}
    assert {start for start, end in moves if end == Status.confirmed} == {
        Status.allocating, Status.waitlisted}
    # every status but pending_confirmation (where a double opt-in starts) is reached by some move
    assert {end for _, end in moves} == set(domain.MOVES) == set(domain.Status) - {Status.pending_confirmation}


def test_a_move_the_table_does_not_have_is_refused():
    assert domain.moves_to(Status.cancelling) == ["confirmed", "pending_confirmation", "waitlisted"]
    assert domain.moves_to(Status.confirmed, (Status.allocating,)) == ["allocating"]
    with pytest.raises(ValueError):
        domain.moves_to(Status.checked_in, (Status.waitlisted,))
    with pytest.raises(ValueError):
        domain.moves_to(Status.erasing, (Status.erased,))


def test_a_span_in_one_day_names_the_day_once_in_the_events_timezone():
    starts = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert domain.local_span(starts, starts + timedelta(hours=5), "Europe/Oslo") == "3. desember 2026 kl. 10:00–15:00"
    assert domain.local_span(starts, starts + timedelta(days=1), "Europe/Oslo", "en") == (
        "3 December 2026 at 10:00 – 4 December 2026 at 10:00")


@pytest.mark.parametrize(("query", "found"), [
    ("", True), ("kari", True), ("KAR nord", True), ("nordmann kari", True), ("rene", True), ("ari", False),
    ("kari ola", False),
])
def test_the_door_finds_a_name_by_the_start_of_its_words_whatever_the_case_and_accents(query, found):
    assert domain.name_matches("Kari René Nordmann", query) is found
