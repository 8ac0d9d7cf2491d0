"""A short-lived in-process cache per thread: its rendered public pages and its settings. This instance's writes
drop a thread's entries at once; other instances' writes show within about two TTLs (an entry past its TTL is
served once more while a single refresh runs, so a popular page never sends a crowd of identical queries to the
store)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Key = tuple


class ThreadCache:
    def __init__(self, ttl_s: float, max_threads: int = 10_000):
        self.ttl_s = ttl_s
        self.max_threads = max_threads
        self.threads: dict[str, dict[Key, tuple[float, Any]]] = {}
        # Bumped by drop(): a page built across a write is not kept.
        self.epoch = 0
        self.generation: dict[str, int] = {}
        self.building: dict[tuple[str, Key], asyncio.Future] = {}

    async def get(self, thread_id: str, key: Key, build: Callable[[], Awaitable[Any]]) -> Any:
        if self.ttl_s <= 0:
            return await build()
        hit = self.threads.get(thread_id, {}).get(key)
        now = time.monotonic()
        if hit is not None and now < hit[0]:
            return hit[1]
        refresh = self._refresh(thread_id, key, build)
        if hit is not None and now < hit[0] + self.ttl_s:
            return hit[1]
        return await asyncio.shield(refresh)

    def _refresh(self, thread_id: str, key: Key, build: Callable[[], Awaitable[Any]]) -> asyncio.Future:
        """One build per page at a time; its result is kept unless the thread changed meanwhile."""
        if (pending := self.building.get((thread_id, key))) is not None:
            return pending
        generation = self._generation(thread_id)

        async def run() -> Any:
            try:
                body = await build()
            finally:
                del self.building[(thread_id, key)]
            if self._generation(thread_id) == generation:
                self._put(thread_id, key, body)
            return body

        task = self.building[(thread_id, key)] = asyncio.ensure_future(run())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a lone failed refresh is not an error
        return task

    def _generation(self, thread_id: str) -> tuple[int, int]:
        return self.epoch, self.generation.get(thread_id, 0)

    def _put(self, thread_id: str, key: Key, body: Any) -> None:
        if thread_id not in self.threads and len(self.threads) >= self.max_threads:
            self.drop()  # crude but bounded; entries live only seconds anyway
        self.threads.setdefault(thread_id, {})[key] = (time.monotonic() + self.ttl_s, body)

    def drop(self, thread_id: str | None = None) -> None:
        """Forget what is cached for a thread (or all threads) after a write."""
        if thread_id is None:
            self.epoch += 1
            self.generation.clear()
            self.threads.clear()
        else:
            self.generation[thread_id] = self.generation.get(thread_id, 0) + 1
            self.threads.pop(thread_id, None)
