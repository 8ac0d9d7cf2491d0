"""Rate limits shared by every instance: counted in the store, a batch of hits in one write."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.http import ApiError
from shared.mongo import connect
from shared.ratelimit import RateLimits
from tests.conftest import within_one_window


@pytest.fixture
async def limits(settings):
    client = connect(settings)
    limits = RateLimits(client[settings.db_name("registration")]["rate_limits"])
    await limits.ensure_indexes()
    yield limits
    await client.close()


async def test_hits_in_one_batch_are_counted_in_arrival_order(limits):
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    # Half a minute into an hour of tomorrow: the windows must not expire (TTL) while the test runs.
    now = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=30, microsecond=0)
    first = await limits.hit_many([("post:a", minute), ("post:a", minute), ("post:b", minute), ("thread:a", hour)], now)
    assert [count for count, _ in first] == [1, 2, 1, 1]
    assert [ends - now for _, ends in first] == [timedelta(seconds=30)] * 3 + [timedelta(minutes=59, seconds=30)]
    assert await limits.hit_many([("post:a", minute), ("post:a", minute)], now) == [  # an open window: read back
        (3, now + timedelta(seconds=30)), (4, now + timedelta(seconds=30))]
    assert [c for c, _ in await limits.hit_many([("post:b", minute), ("post:c", minute)], now)] == [2, 1]
    assert [c for c, _ in await limits.hit_many([("post:a", minute)], now + minute)] == [1]  # a new window


async def test_two_instances_share_one_limit(settings, limits):
    client = connect(settings)
    other_instance = RateLimits(client[settings.db_name("registration")]["rate_limits"])
    await within_one_window()
    try:
        results = await asyncio.gather(
            *(instance.enforce("10.0.0.1", 5, timedelta(minutes=1), "For mange.")
              for instance in [limits, other_instance] * 5), return_exceptions=True)
    finally:
        await client.close()
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 5
    assert all(r.status == 429 and 1 <= int(r.headers["Retry-After"]) <= 60 for r in refused)



async def test_every_window_carries_its_expiry_for_the_ttl_index(limits):
    """Made by the one-key path and by the batch path alike (nx-27017 ignores $setOnInsert in the first)."""
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    now = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=30, microsecond=0)
    await limits.hit_many([("post:a", minute)], now)
    await limits.hit_many([("post:a", minute), ("post:b", minute), ("thread:a", hour)], now)
    windows = {doc["_id"].rsplit(":", 1)[0]: (doc["count"], doc["expires_at"])
               async for doc in limits.collection.find()}
    assert windows == {"post:a": (2, now + timedelta(seconds=30)), "post:b": (1, now + timedelta(seconds=30)),
                       "thread:a": (1, now + timedelta(minutes=59, seconds=30))}
