"""A short-lived in-process cache of rendered public pages, per thread, dropped on this instance's writes."""

import time


class PageCache:
    def __init__(self, ttl_s: float, max_threads: int = 10_000):
        self.ttl_s = ttl_s
        self.max_threads = max_threads
        self.threads: dict[str, dict[tuple, tuple[float, bytes]]] = {}

    def get(self, thread_id: str, key: tuple) -> bytes | None:
        hit = self.threads.get(thread_id, {}).get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, thread_id: str, key: tuple, body: bytes) -> None:
        if self.ttl_s <= 0:
            return
        if thread_id not in self.threads and len(self.threads) >= self.max_threads:
            self.threads.clear()  # crude but bounded; entries live only seconds anyway
        self.threads.setdefault(thread_id, {})[key] = (time.monotonic() + self.ttl_s, body)

    def drop(self, thread_id: str | None = None) -> None:
        if thread_id is None:
            self.threads.clear()
        else:
            self.threads.pop(thread_id, None)
