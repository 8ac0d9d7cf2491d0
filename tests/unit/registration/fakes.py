"""In-memory stand-ins for the registration service's store and outbox (cosmicpython's FakeRepository), so that its
use cases run in milliseconds without MongoDB or RabbitMQ.

Only the store methods the unit-tested use cases call are here, each keeping the promise its docstring in
services/registration/store.py makes (the real store's semantics are held to MongoDB's by tests/store and the
integration tests; nothing checks this fake against them, so keep it as plain as the promises)."""

import copy
import json

from services.registration import domain
from services.registration.domain import EventStatus, Status
from services.registration.store import Duplicate


def _copy(doc: dict | None) -> dict | None:
    """What a read returns: a copy without the outbox, as the real store's projection (no shared state)."""
    return None if doc is None else copy.deepcopy({k: v for k, v in doc.items() if k != "outbox"})


class FakeStore:
    # The outbox is told a collection; here its name stands for it.
    events, registrations, invites = "events", "registrations", "guest_invites"

    def __init__(self):
        self.event_docs: dict[str, dict] = {}
        self.registration_docs: dict[str, dict] = {}

    # Events

    async def insert_event(self, doc: dict, entries: list[dict]) -> None:
        if doc["_id"] in self.event_docs:
            raise Duplicate
        self.event_docs[doc["_id"]] = copy.deepcopy(
            {**doc, "seats": [], "waitlist": [], "free": doc["capacity"], "version": 0, "places_version": 0,
             "personal_data": "kept", "outbox": entries})

    async def event(self, slug: str) -> dict | None:
        return _copy(self.event_docs.get(slug))

    async def take_places(self, batches: dict[str, tuple[dict, list[str], list[str]]]) -> dict[str, dict]:
        for slug, (read, seated, waiting) in batches.items():
            event = self.event_docs[slug]
            if (event["status"] == EventStatus.published and event["free"] == read["free"]
                    and event["version"] == read["version"]
                    and event["places_version"] == read.get("places_version")):  # compare-and-set
                event["seats"] += seated
                event["waitlist"] += waiting
                event["free"] -= len(seated)
                event["places_version"] += 1 if seated or waiting else 0
        return {slug: _copy(self.event_docs[slug]) for slug in batches}

    async def release(self, slug: str, rid: str) -> dict | None:
        event = self.event_docs[slug]
        for held in ("seats", "waitlist"):
            if rid in event[held]:
                event[held].remove(rid)
                event["free"] += held == "seats"
                event["places_version"] += 1
                break
        return _copy(event)

    async def promote(self, slug: str, rid: str) -> dict | None:
        event = self.event_docs[slug]
        if event["free"] <= 0 or rid not in event["waitlist"]:
            return None
        event["waitlist"].remove(rid)
        event["seats"].append(rid)
        event["free"] -= 1
        event["places_version"] += 1
        return _copy(event)

    # Registrations

    async def insert_registrations(self, batch: list[tuple[dict, list[dict]]]) -> list[bool]:
        stored = []
        for doc, entries in batch:
            taken = any(r["event_slug"] == doc["event_slug"] and r["email"] == doc["email"]
                        for r in self.registration_docs.values())  # the unique index
            if not taken:
                self.registration_docs[doc["_id"]] = copy.deepcopy({**doc, "outbox": entries})
            stored.append(not taken)
        return stored

    async def registration(self, rid: str) -> dict | None:
        return _copy(self.registration_docs.get(rid))

    async def transition(self, rid: str, status: Status, changes: dict, entries: list[dict],
                         token_hash: str | None = None, only_from: tuple[Status, ...] | None = None
                         ) -> dict | None:
        doc = self.registration_docs.get(rid)
        if doc is None or doc["status"] not in domain.moves_to(status, only_from):
            return None
        doc.update(copy.deepcopy(changes), status=status.value)
        doc["outbox"] += entries
        if token_hash:
            doc["token_hashes"].append(token_hash)
        return _copy(doc)


class FakeOutbox:
    """Publishes at once: records every message in the order it would reach the bus."""

    def __init__(self):
        self.published: list[dict] = []

    async def try_flush(self, collection: str, doc_id, entries: list[dict]) -> None:
        self.published += entries

    async def try_flush_many(self, collection: str, batch: list[tuple[object, list[dict]]]) -> None:
        for _, entries in batch:
            self.published += entries

    def messages(self, routing_key: str) -> list[dict]:
        """The CloudEvents published under a routing key (e.g. registration.confirmed.v1)."""
        return [json.loads(e["body"]) for e in self.published if e["routing_key"] == routing_key]
