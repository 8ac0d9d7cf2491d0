"""Transactional outbox on single-document atomicity: the event to publish is written into the same document as
the change that caused it (an `outbox` array), then published and pulled. A relay sweeps on start-up and
periodically for entries a crashed or disconnected process left behind, so no event is ever lost."""

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .bus import Bus, trace_of
from .messages import CloudEvent
from .messages.envelope import also_published

log = logging.getLogger(__name__)
BACKLOG = Gauge("outbox_backlog", "Stored events older than the relay's grace and not yet published, at its last sweep",
                ["service", "collection"])
FIELD = "outbox"
# Unix time of the oldest entry a document may still hold; indexed (sparse), so the relay reads only documents
# that may have something to publish instead of the whole collection. The sweep removes it once the outbox is
# empty. A number, not a datetime: nx-27017 stores datetimes written by update operators as strings.
DUE = "outbox_due"
# How long this process remembers an entry it published: longer than a copy of a document read before the entry
# was pulled from it may wait to be flushed (a request's or the sweep's).
REMEMBER_PUBLISHED_S = 120.0


def entry(event: CloudEvent) -> dict:
    """The outbox entry to append (see `add`) in the same update as the state change. It carries the message in
    every version still published (a new major version and, for a stated overlap, the one it replaces), so they go
    out together, from the same write."""
    return {**_wire(event), "created_at": datetime.now(UTC), "also": [_wire(older) for older in also_published(event)]}


def _wire(event: CloudEvent) -> dict:
    # The trace context beside the body too, so the publisher (maybe the relay, in another process) need not parse it.
    return {"id": event.id, "type": event.type, "routing_key": event.routing_key, "body": event.model_dump_json(),
            "trace": trace_of(event)}


def add(entries: list[dict]) -> dict:
    """The update operator that appends outbox entries. $addToSet rather than $push: nx-27017 0.8.1 stores
    $push-ed sub-documents as JSON strings (which the sweep then cannot find). Entries carry unique ids, so on
    MongoDB both mean the same. Unlike MongoDB, nx-27017's $addToSet does not create a missing array: create
    documents with `holding`."""
    return {"$addToSet": {FIELD: {"$each": entries}}, "$min": {DUE: time.time()}}


def holding(entries: list[dict]) -> dict:
    """The outbox fields of a new document (insert it with these, even with no entries)."""
    return {FIELD: entries, DUE: time.time()} if entries else {FIELD: []}


def _aware(moment: datetime) -> datetime:
    # A client without tz_aware returns naive UTC datetimes.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _or_defer(flushing: Awaitable[None]) -> None:
    """Publish now if the broker is there; otherwise the relay will (the entries are safe in the store)."""
    try:
        await flushing
    except Exception:
        log.warning("publish deferred to the outbox relay", exc_info=True)


class Outbox:
    def __init__(self, bus: Bus, collections: list[AsyncCollection], grace: timedelta = timedelta(seconds=5)):
        self.bus = bus
        self.collections = collections
        self.service = bus.source.rsplit("/", 1)[-1]  # the metrics' label: /moteplass/registration → registration
        # The request that wrote an entry publishes it itself; the sweep leaves young entries to it.
        self.grace = grace
        # Every path that publishes (the request that wrote an entry, a later one that holds the same document,
        # the sweep) goes through these, so that this process publishes an entry once: the entries being published
        # (with whether they got out) and those published in the last REMEMBER_PUBLISHED_S, oldest first.
        self._publishing: dict[str, asyncio.Future[bool]] = {}
        self._published: dict[str, float] = {}

    async def ensure_indexes(self) -> None:
        for collection in self.collections:
            await collection.create_index(DUE, sparse=True)

    async def flush(self, collection: AsyncCollection, doc_id, entries: list[dict]) -> None:
        """Publish a document's entries (each confirmed by the broker) and only then remove them from it."""
        await self.flush_many(collection, [(doc_id, entries)])

    async def flush_many(self, collection: AsyncCollection, batch: list[tuple[object, list[dict]]]) -> None:
        """`flush` for many documents of one collection at once: published concurrently (each document's entries
        in order), then removed in one write (two when some document holds more than what was published). What
        was published is removed even when another document's publishing failed; that failure is raised after."""
        outcomes = await asyncio.gather(*(self._publish(items) for _, items in batch))
        await self._pull(collection, [(doc_id, done) for (doc_id, _), (done, _) in zip(batch, outcomes) if done])
        if failure := next((error for _, error in outcomes if error is not None), None):
            raise failure

    async def _pull(self, collection: AsyncCollection, batch: list[tuple[object, list[dict]]]) -> None:
        # A document that held just the one entry published is emptied and loses its due mark in the same write,
        # so the sweep need not visit it afterwards (that visit, a read and a write per document, cost as much
        # as this). The match is on the entry's id: one added meanwhile keeps the document marked. (nx-27017
        # matches one id inside an array, not $all of several: documents with more entries are pulled from.)
        singles = [(doc_id, items[0]["id"]) for doc_id, items in batch if len(items) == 1]
        if singles:
            emptied = await collection.bulk_write(
                [UpdateOne({"_id": doc_id, FIELD: {"$size": 1}, f"{FIELD}.id": entry_id},
                           {"$set": {FIELD: []}, "$unset": {DUE: ""}}) for doc_id, entry_id in singles],
                ordered=False)
            if emptied.modified_count == len(singles):
                batch = [(doc_id, items) for doc_id, items in batch if len(items) != 1]
        ids = [item["id"] for _, items in batch for item in items]
        if ids:
            await collection.update_many({"_id": {"$in": [doc_id for doc_id, _ in batch]}},
                                         {"$pull": {FIELD: {"id": {"$in": ids}}}})

    async def _publish(self, entries: list[dict]) -> tuple[list[dict], Exception | None]:
        """Publish a document's entries one after the other (its messages keep their order), each at most once
        at a time in this process: an entry another path is publishing is waited for and left to it, one this
        process published lately (a copy of the document read before it was pulled) is not published again.
        Returns the entries to pull now and the error that stopped it, if any."""
        self._forget_published()
        done: list[dict] = []
        for item in entries:
            entry_id = item["id"]
            if entry_id in self._published:
                done.append(item)
                continue
            if (elsewhere := self._publishing.get(entry_id)) is not None:
                if not await asyncio.shield(elsewhere):
                    return done, None  # its publisher failed and said so; the relay publishes the rest in order
                continue
            claim = self._publishing[entry_id] = asyncio.get_running_loop().create_future()
            published = False
            try:
                for message in [item, *item.get("also", [])]:  # the versions it is published in, newest first
                    await self.bus.publish_raw(message["routing_key"], message["body"].encode(), message["id"],
                                               message["type"], trace=message.get("trace", {}))
                published = True
            except Exception as exc:
                return done, exc
            finally:
                claim.set_result(published)
                del self._publishing[entry_id]
                if published:
                    self._published[entry_id] = time.monotonic()
            done.append(item)
        return done, None

    def _forget_published(self) -> None:
        cutoff = time.monotonic() - REMEMBER_PUBLISHED_S
        while self._published and next(iter(self._published.values())) < cutoff:
            del self._published[next(iter(self._published))]

    async def try_flush(self, collection: AsyncCollection, doc_id, entries: list[dict]) -> None:
        """Publish now if the broker is there; otherwise the relay will (the entries are safe in the store)."""
        await _or_defer(self.flush(collection, doc_id, entries))

    async def try_flush_many(self, collection: AsyncCollection, batch: list[tuple[object, list[dict]]]) -> None:
        """`try_flush` for many documents of one collection at once."""
        await _or_defer(self.flush_many(collection, batch))

    async def sweep(self, grace: timedelta | None = None) -> int:
        cutoff = datetime.now(UTC) - (self.grace if grace is None else grace)
        may_hold = {DUE: {"$lte": cutoff.timestamp()}}
        published = 0
        for collection in self.collections:
            # Entries are filtered here, not in the query: nx-27017 cannot compare fields inside arrays.
            docs = [(doc["_id"], [e for e in doc.get(FIELD, []) if _aware(e["created_at"]) <= cutoff])
                    async for doc in collection.find(may_hold, {FIELD: 1})]
            BACKLOG.labels(self.service, collection.name).set(sum(len(due) for _, due in docs))
            for doc_id, due in docs:
                if due:
                    await self.flush(collection, doc_id, due)
                    published += len(due)
            # Atomic per document: one that gained an entry meanwhile is not empty and keeps its mark.
            await collection.update_many({**may_hold, FIELD: {"$size": 0}}, {"$unset": {DUE: ""}})
        if published:
            log.info("outbox relay published %d event(s)", published)
        return published
