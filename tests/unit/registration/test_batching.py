"""Group commit (the hot path's batching) and the rules that place a batch of arrivals; no I/O."""

import asyncio

import pytest

from services.registration import domain
from services.registration.batching import GroupCommit
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


async def test_what_arrives_while_a_commit_is_in_flight_is_the_next_batch():
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def commit(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await release.wait()
        return [item * 10 for item in items]

    group = GroupCommit(commit)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)  # the first batch is in flight
    waiting = [asyncio.ensure_future(group.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, *waiting) == [10, 20, 30, 40]
    assert batches == [[1], [2, 3, 4]]


async def test_each_item_gets_its_own_refusal_and_a_failed_commit_fails_its_whole_batch():
    async def commit(items: list[int]) -> list:
        if 0 in items:
            raise RuntimeError("the store is gone")
        return [ValueError(item) if item % 2 else item for item in items]

    group = GroupCommit(commit)
    results = await asyncio.gather(group.submit(2), group.submit(3), return_exceptions=True)
    assert results[0] == 2 and isinstance(results[1], ValueError)
    with pytest.raises(RuntimeError):
        await group.submit(0)
    assert await group.submit(4) == 4  # and the next batch goes on
