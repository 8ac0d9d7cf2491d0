import asyncio

import pytest

from shared.batching import GroupCommit


async def test_a_lone_item_is_committed_at_once_and_concurrent_ones_are_batched_in_arrival_order():
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def commit(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            await gate.wait()  # the first commit is in flight while the others arrive
        return [item * 10 for item in items]

    group = GroupCommit(commit)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(n)) for n in range(2, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50]
    assert batches == [[1], [2, 3, 4, 5]]


async def test_each_item_gets_its_own_failure_and_a_failed_commit_fails_its_whole_batch():
    async def commit(items: list[int]) -> list[int | Exception]:
        if 0 in items:
            raise RuntimeError("store down")
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    group = GroupCommit(commit)
    good, bad = await asyncio.gather(group.submit(1), group.submit(-1), return_exceptions=True)
    assert good == 1 and isinstance(bad, ValueError)
    with pytest.raises(RuntimeError):
        await group.submit(0)
    assert await group.submit(2) == 2  # the next batch is not affected


async def test_an_added_item_is_committed_without_anyone_waiting_and_its_failure_is_logged(caplog):
    committed: list[list[int]] = []

    async def commit(items: list[int]) -> list[int | Exception]:
        committed.append(items)
        return [ValueError("bad") if i < 0 else i for i in items]

    group = GroupCommit(commit)
    group.add(1)
    group.add(-1)
    assert await group.submit(2) == 2  # queued behind the added ones, so they are done by now
    assert [i for batch in committed for i in batch] == [1, -1, 2]
    assert "a queued item failed" in caplog.text


async def test_settled_waits_for_every_queued_item_and_a_caller_giving_up_cuts_nothing_short():
    committed: list[int] = []
    gate = asyncio.Event()

    async def commit(items: list[int]) -> list[None]:
        await gate.wait()
        committed.extend(items)
        return [None] * len(items)

    group = GroupCommit(commit)
    await group.settled()  # nothing queued: at once
    group.add(1)
    await asyncio.sleep(0)
    group.add(2)  # queued behind the batch in flight
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(group.settled(), 0.01)
    gate.set()
    await group.settled()
    assert committed == [1, 2]
