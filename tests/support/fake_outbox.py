"""An in-memory stand-in for shared.outbox.Outbox, for unit tests of a service's use cases over a fake store: it
publishes at once, in the order the messages would reach the bus, and each entry once, as the real outbox does in
one process (a later write's answer still holds the entries of an earlier one until they are pulled)."""

import json


class FakeOutbox:
    def __init__(self):
        self.published: list[dict] = []
        self._ids: set[str] = set()

    async def try_flush(self, collection, doc_id, entries: list[dict]) -> None:
        for entry in entries:
            if entry["id"] not in self._ids:
                self._ids.add(entry["id"])
                self.published.append(entry)

    async def try_flush_many(self, collection, batch: list[tuple[object, list[dict]]]) -> None:
        for doc_id, entries in batch:
            await self.try_flush(collection, doc_id, entries)

    def messages(self, routing_key: str) -> list[dict]:
        """The CloudEvents published under a routing key (e.g. comment.published.v1), oldest first."""
        return [json.loads(e["body"]) for e in self.published if e["routing_key"] == routing_key]
