"""The rules that place a batch of arrivals (the hot path's group commit); no I/O."""

import pytest

from services.registration import domain
from services.registration.domain import EventStatus, Status

from .documents import event as jam


@pytest.mark.parametrize("free, arrivals, waitlist_enabled, expected", [
    (5, 3, True, (3, 0)),
    (2, 5, True, (2, 3)),
    (0, 4, True, (0, 4)),
    (2, 5, False, (2, 0)),
    (0, 3, False, (0, 0)),
])
def test_a_batch_takes_the_free_seats_in_arrival_order_and_the_rest_wait(free, arrivals, waitlist_enabled, expected):
    assert domain.allocation(free, arrivals, waitlist_enabled) == expected


def test_the_waiters_of_a_batch_are_the_last_on_the_list_in_their_order():
    # 2 seats, 3 who joined a list that had 4 on it (7 after), 1 refused.
    assert domain.batch_placement(7, 2, 3, 6) == [
        (Status.confirmed, None), (Status.confirmed, None),
        (Status.waitlisted, 5), (Status.waitlisted, 6), (Status.waitlisted, 7), None]


def test_a_batch_landed_when_its_places_show_in_the_event_read_after_its_write():
    event = jam(capacity=2, seats=["a", "b"], waitlist=["w", "c", "d"])
    assert domain.batch_landed(event, ["b"], ["c", "d"]) == 3
    assert domain.batch_landed(event, ["b"], []) == 3
    # Another batch appended after this one's waiters (between the write and the read): found by a search.
    assert domain.batch_landed(jam(seats=["a", "b"], waitlist=["w", "c", "d", "e"]), [], ["c", "d"]) == 3
    # Landed, and its waiters were promoted to seats before the read: first in line, they wait for no one.
    assert domain.batch_landed(jam(capacity=4, seats=["a", "b", "c", "d"], waitlist=["w"]), [], ["c", "d"]) == 2
    # The write did not land: the event had changed first.
    assert domain.batch_landed(event, ["x"], []) is None
    assert domain.batch_landed(event, [], ["x"]) is None


def test_a_batch_with_nothing_to_place_is_full_only_if_the_event_read_is_still_open_and_full():
    event = jam(capacity=1, seats=["a"])
    assert domain.batch_landed(event, [], []) == 0
    assert domain.batch_landed(jam(capacity=1), [], []) is None  # a seat freed meanwhile: place again
    assert domain.batch_landed(jam(capacity=1, seats=["a"], status=EventStatus.cancelled), [], []) is None  # closed
