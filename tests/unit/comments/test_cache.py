"""The per-thread cache: single-flight builds, drops on writes, one stale serve while refreshing (fake clock)."""

import asyncio

import pytest

from services.comments import cache as cache_module
from services.comments.cache import ThreadCache


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    return now


class Builder:
    def __init__(self):
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> bytes:
        self.calls += 1
        await self.gate.wait()
        return f"v{self.calls}".encode()


async def test_concurrent_misses_build_once(clock):
    cache, build = ThreadCache(ttl_s=2), Builder()
    build.gate.clear()
    waiting = [asyncio.ensure_future(cache.get("t", ("p",), build)) for _ in range(10)]
    await asyncio.sleep(0)
    build.gate.set()
    assert await asyncio.gather(*waiting) == [b"v1"] * 10 and build.calls == 1
    assert await cache.get("t", ("p",), build) == b"v1" and build.calls == 1


async def test_a_drop_forgets_the_thread_and_a_build_across_it_is_not_kept(clock):
    cache, build = ThreadCache(ttl_s=2), Builder()
    await cache.get("t", ("p",), build)
    cache.drop("t")
    build.gate.clear()
    pending = asyncio.ensure_future(cache.get("t", ("p",), build))
    await asyncio.sleep(0)
    cache.drop()  # a write while the page was being built
    build.gate.set()
    assert await pending == b"v2"
    assert await cache.get("t", ("p",), build) == b"v3"


async def test_past_its_ttl_an_entry_is_served_once_more_while_it_refreshes(clock):
    cache, build = ThreadCache(ttl_s=2), Builder()
    await cache.get("t", ("p",), build)
    clock[0] += 2.5
    assert await cache.get("t", ("p",), build) == b"v1"  # stale, refresh started
    await asyncio.sleep(0)
    assert await cache.get("t", ("p",), build) == b"v2"
    clock[0] += 10  # far too old to serve
    assert await cache.get("t", ("p",), build) == b"v3"


async def test_ttl_zero_means_no_cache(clock):
    cache, build = ThreadCache(ttl_s=0), Builder()
    assert [await cache.get("t", ("p",), build) for _ in range(2)] == [b"v1", b"v2"]
