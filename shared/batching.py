"""Group commit with natural batching, no timers: while one commit is in flight, what arrives waits in a queue;
when the commit returns, the whole queue is the next batch. Alone, a request goes at once; under load, batches
grow by themselves, so one store round trip serves many requests."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
log = logging.getLogger(__name__)


def _log_failure(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a queued item failed", exc_info=future.exception())


class GroupCommit(Generic[Item, Result]):
    def __init__(self, commit: Callable[[list[Item]], Awaitable[list[Result | Exception]]]):
        """`commit` handles a batch in arrival order and answers each item with its result or the exception to
        raise to its submitter; an exception it raises itself fails the whole batch."""
        self._commit = commit
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Result:
        return await self._enqueue(item)

    def add(self, item: Item) -> None:
        """Queue an item without waiting for it (work kept off a request's path); a failure is logged."""
        self._enqueue(item).add_done_callback(_log_failure)

    async def settled(self) -> None:
        """Once every item queued so far, and any queued meanwhile, has been committed (e.g. before a shutdown)."""
        while self._drainer is not None:
            await asyncio.shield(self._drainer)  # a caller that gives up does not cut the batch short

    def _enqueue(self, item: Item) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            # Its own task, so that a caller that goes away does not cut short a batch holding others' work.
            self._drainer = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._commit([item for item, _ in batch])
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._drainer = None
