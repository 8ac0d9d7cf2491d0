"""Rate limits per key (e.g. a client IP) in fixed windows, shared by every instance of a service: counted in its
own database, one write for all the hits that arrive together (a group commit)."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from aiohttp import web
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .batching import GroupCommit
from .http import ApiError


def client_ip(request: web.Request, trusted_proxies: int) -> str:
    """The caller's address. Behind `trusted_proxies` reverse proxies, each appending the address it was reached
    from to X-Forwarded-For, the caller is the entry that many from the right: entries further left were written by
    the caller and may be anything. With fewer entries than proxies, or one that is no address, the peer is used."""
    if trusted_proxies:
        entries = [entry.strip() for header in request.headers.getall("X-Forwarded-For", [])
                   for entry in header.split(",")]
        if len(entries) >= trusted_proxies:
            try:
                return str(ip_address(entries[-trusted_proxies]))
            except ValueError:
                pass
    return request.remote or "unknown"


class RateLimits:
    def __init__(self, collection: AsyncCollection):
        self.collection = collection
        self._hitting = GroupCommit(self._hit_now)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("expires_at", expireAfterSeconds=0)

    async def enforce(self, key: str, allowed: int, window: timedelta, message: str) -> None:
        """Count a hit; past `allowed` in the window, refuse with 429 and when to try again."""
        count, ends = await self._hitting.submit((key, window))
        if count > allowed:
            retry_after = max(1, int((ends - datetime.now(UTC)).total_seconds() + 0.999))
            raise ApiError(429, message, headers={"Retry-After": str(retry_after)})

    async def _hit_now(self, hits: list[tuple[str, timedelta]]) -> list[tuple[int, datetime]]:
        return await self.hit_many(hits, datetime.now(UTC))

    async def hit_many(self, hits: list[tuple[str, timedelta]], now: datetime) -> list[tuple[int, datetime]]:
        """Count hits (a key may come more than once) in their current windows in one write for the batch.
        Returns for each hit its count so far and when its window ends."""
        ids, ends = [], {}
        for key, window in hits:
            seconds = int(window.total_seconds())
            start = int(now.timestamp()) // seconds * seconds
            ids.append(f"{key}:{start}")
            ends[ids[-1]] = datetime.fromtimestamp(start + seconds, UTC)
        batch = Counter(ids)
        keys = list(batch)
        # A window is created with its expiry (a datetime, for the TTL index) from the upsert's equality filter,
        # not $setOnInsert, which nx-27017 ignores in findAndModify (tests/store/divergences.py).
        if len(keys) == 1:  # the usual batch (one client's burst): one round trip that returns the count
            doc = await self.collection.find_one_and_update(
                {"_id": keys[0], "expires_at": ends[keys[0]]}, {"$inc": {"count": len(ids)}},
                upsert=True, return_document=ReturnDocument.AFTER, projection={"count": 1})
            first = doc["count"] - len(ids)
            return [(first + n, ends[keys[0]]) for n in range(1, len(ids) + 1)]
        result = await self.collection.bulk_write(
            [UpdateOne({"_id": doc_id, "expires_at": ends[doc_id]}, {"$inc": {"count": n}}, upsert=True)
             for doc_id, n in batch.items()], ordered=False)
        # A window this batch opened holds exactly its hits (the usual case: no read). Others are read back;
        # another instance's hit landing in between makes a count high, never low: a limit may then refuse a
        # moment early, but never lets more through.
        totals = {keys[i]: batch[keys[i]] for i in result.upserted_ids}
        if len(totals) < len(keys):
            totals |= {doc["_id"]: doc["count"] async for doc in self.collection.find(
                {"_id": {"$in": [k for k in keys if k not in totals]}}, {"count": 1})}
        # The batch's hits of one key take the counts below its total in arrival order. A window that expired
        # (and was removed) meanwhile counts as just this batch's hits.
        seen: Counter[str] = Counter()
        counts = []
        for doc_id in ids:
            seen[doc_id] += 1
            counts.append((totals.get(doc_id, batch[doc_id]) - batch[doc_id] + seen[doc_id], ends[doc_id]))
        return counts
