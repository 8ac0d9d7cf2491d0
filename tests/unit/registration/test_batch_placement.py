"""The rules that place a batch of arrivals (the hot path's group commit); no I/O."""

import pytest

from services.registration import domain
from services.registration.domain import Status


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
