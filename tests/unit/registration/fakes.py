"""An in-memory stand-in for the registration service's store (cosmicpython's FakeRepository), so that its use
cases run in milliseconds without MongoDB or RabbitMQ (with tests/support/fake_outbox.py for the outbox).

Each store method keeps the promise its docstring in services/registration/store.py makes, over the domain's types
(domain.Event, Registration, GuestInvite) and nothing else: no stored shapes, no workarounds. The real store's
semantics are held to MongoDB's by tests/store and the integration tests; nothing checks this fake against them,
so keep it as plain as the promises. Every write makes new objects (the domain's types are frozen, and no list
is changed in place), so what a read returned never changes under its reader."""

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import fields, replace
from datetime import UTC, datetime

from services.registration import domain
from services.registration.domain import Event, EventStatus, GuestInvite, Registration, Status
from services.registration.store import Duplicate

# What an erased registration reads as: its personal fields at their defaults (None, answers empty).
ERASED = {f.name: f.default_factory() if callable(f.default_factory) else f.default
          for f in fields(Registration) if f.name in domain.PERSONAL_FIELDS}


def now() -> datetime:
    return datetime.now(UTC)


class FakeStore:
    # The outbox is told a collection; here its name stands for it.
    events, registrations, invites = "events", "registrations", "guest_invites"

    def __init__(self):
        self.event_docs: dict[str, Event] = {}
        self.registration_docs: dict[str, Registration] = {}
        self.invite_docs: dict[str, GuestInvite] = {}
        self.changed_at: dict[str, datetime] = {}  # when each registration was last written (for `stuck`)
        self.claimed_at: dict[str, datetime] = {}  # unsettled claims of guest codes, by code hash

    # Events. An event's revision here is (admin changes, changes of its places), each counted.

    def _save_event(self, event: Event, admin: int = 0, places: int = 0) -> Event:
        version, places_version = event.revision
        event = self.event_docs[event.slug] = replace(event, revision=(version + admin, places_version + places))
        return event

    async def insert_event(self, event: Event, entries: list[dict]) -> None:
        if event.slug in self.event_docs:
            raise Duplicate
        self._save_event(replace(event, revision=(0, 0)))

    async def event(self, slug: str) -> Event | None:
        return self.event_docs.get(slug)

    async def listed_events(self) -> list[Event]:
        return sorted((e for e in self.event_docs.values() if e.status != EventStatus.draft),
                      key=lambda e: e.starts_at)

    async def upcoming_events(self, now: datetime) -> list[Event]:
        return [e for e in self.event_docs.values() if e.ends_at > now]

    async def update_event(self, event: Event, changed: dict, entries: list[dict]) -> Event | None:
        current = self.event_docs[event.slug]
        if current.revision[0] != event.revision[0] or changed.get("capacity", current.capacity) < len(current.seats):
            return None
        return self._save_event(replace(current, **changed), admin=1)

    async def take_places(self, batches: dict[str, tuple[Event, list[str], list[str]]]) -> dict[str, Event]:
        for slug, (read, seated, waiting) in batches.items():
            event = self.event_docs[slug]
            if event.status == EventStatus.published and event.revision == read.revision:  # compare-and-set
                self._save_event(replace(event, seats=[*event.seats, *seated], waitlist=[*event.waitlist, *waiting]),
                                 places=1 if seated or waiting else 0)
        return {slug: self.event_docs[slug] for slug in batches}

    async def release(self, slug: str, rid: str) -> Event | None:
        event = self.event_docs[slug]
        if rid in event.seats or rid in event.waitlist:
            event = self._save_event(replace(event, seats=[r for r in event.seats if r != rid],
                                             waitlist=[r for r in event.waitlist if r != rid]), places=1)
        return event

    async def promote(self, slug: str, rid: str) -> Event | None:
        event = self.event_docs[slug]
        if domain.seats_left(event) == 0 or rid not in event.waitlist:
            return None
        return self._save_event(replace(event, seats=[*event.seats, rid],
                                        waitlist=[r for r in event.waitlist if r != rid]), places=1)

    async def events_keeping_personal_data(self) -> list[Event]:
        return [e for e in self.event_docs.values() if e.personal_data in ("kept", "purging")]

    async def start_purge(self, slug: str, counts: dict[str, int]) -> None:
        event = self.event_docs[slug]
        if event.personal_data == "kept":
            self._save_event(replace(event, personal_data="purging", final_counts=counts))

    async def end_purge(self, slug: str) -> None:
        self._save_event(replace(self.event_docs[slug], personal_data="purged"))

    # Registrations

    def _save(self, registration: Registration) -> Registration:
        self.registration_docs[registration.id] = registration
        self.changed_at[registration.id] = now()
        return registration

    async def insert_registrations(self, batch: list[tuple[Registration, list[dict]]]) -> list[bool]:
        stored = []
        for registration, entries in batch:
            taken = any(r.event_slug == registration.event_slug and r.email == registration.email
                        and r.status not in (Status.cancelled, Status.erased)
                        for r in self.registration_docs.values())  # one live registration per address
            if not taken:
                self._save(registration)
            stored.append(not taken)
        return stored

    async def delete_registration(self, rid: str, status: Status) -> None:
        if (registration := self.registration_docs.get(rid)) is not None and registration.status == status:
            del self.registration_docs[rid]

    async def confirm_email(self, rid: str, now: datetime) -> Registration | None:
        registration = self.registration_docs.get(rid)
        if (registration is None or registration.status not in domain.moves_to(Status.allocating)
                or registration.expires_at <= now):
            return None
        return self._save(replace(registration, status=Status.allocating, expires_at=None))

    async def delete_expired_pending(self, now: datetime) -> int:
        expired = [r.id for r in self.registration_docs.values()
                   if r.status == Status.pending_confirmation and r.expires_at <= now]
        for rid in expired:
            del self.registration_docs[rid]
        return len(expired)

    async def mark_all_cancelling(self, slug: str, statuses: tuple[Status, ...], reason: str) -> None:
        marked = domain.moves_to(Status.cancelling, statuses)
        for registration in list(self.registration_docs.values()):
            if registration.event_slug == slug and registration.status in marked:
                self._save(replace(registration, status=Status.cancelling, cancel_reason=reason,
                                   cancelled_from=registration.status))

    async def registration(self, rid: str) -> Registration | None:
        return self.registration_docs.get(rid)

    async def transition(self, rid: str, status: Status, changes: dict, entries: list[dict],
                         token_hash: str | None = None, only_from: tuple[Status, ...] | None = None
                         ) -> Registration | None:
        registration = self.registration_docs.get(rid)
        if registration is None or registration.status not in domain.moves_to(status, only_from):
            return None
        token_hashes = [*registration.token_hashes, token_hash] if token_hash else registration.token_hashes
        return self._save(replace(registration, **changes, status=status, token_hashes=token_hashes))

    async def registrations_of(self, slug: str, statuses: Iterable[Status] | None = None,
                               organisation_type: str | None = None, municipality: str | None = None,
                               after: str | None = None, limit: int | None = None) -> list[Registration]:
        statuses = None if statuses is None else set(statuses)
        found = sorted((r for r in self.registration_docs.values()
                        if r.event_slug == slug and (statuses is None or r.status in statuses)
                        and (organisation_type is None or r.organisation_type == organisation_type)
                        and (municipality is None or (r.municipality or {}).get("number") == municipality)
                        and (after is None or r.id > after)), key=lambda r: r.id)
        return found[:limit] if limit else found

    async def counts(self, slug: str) -> dict[str, int]:
        return dict(Counter(r.status.value for r in self.registration_docs.values() if r.event_slug == slug))

    async def set_answers(self, rid: str, answers: dict, statuses: tuple[Status, ...]) -> Registration | None:
        registration = self.registration_docs.get(rid)
        if registration is None or registration.status not in statuses:
            return None
        return self._save(replace(registration, answers=answers))

    async def erase(self, rid: str, entries: list[dict]) -> Registration | None:
        registration = self.registration_docs.get(rid)
        if registration is None or registration.status not in domain.moves_to(Status.erased):
            return None
        return self._save(replace(registration, **ERASED, status=Status.erased, email=domain.erased_email(rid)))

    async def stuck(self, statuses: tuple[Status, ...], before: datetime, slug: str | None = None
                    ) -> AsyncIterator[Registration]:
        for registration in list(self.registration_docs.values()):
            if (registration.status in statuses and self.changed_at[registration.id] <= before
                    and slug in (None, registration.event_slug)):
                yield registration

    async def statuses(self, rids: list[str]) -> dict[str, Status]:
        return {rid: self.registration_docs[rid].status for rid in rids if rid in self.registration_docs}

    # Guest invites

    async def insert_invite(self, invite: GuestInvite, slots: int, entries: list[dict]) -> str | None:
        for slot in range(slots):
            invite_id = f"{invite.event_slug}/{invite.municipality}/{slot}"
            if invite_id not in self.invite_docs:
                self.invite_docs[invite_id] = invite
                return invite_id
        return None

    def _invite_id(self, code_hash: str) -> str | None:
        return next((i for i, invite in self.invite_docs.items() if invite.code_hash == code_hash), None)

    async def invite(self, code_hash: str) -> GuestInvite | None:
        invite_id = self._invite_id(code_hash)
        return invite_id and self.invite_docs[invite_id]

    async def use_invite(self, code_hash: str, rid: str) -> bool:
        invite_id = self._invite_id(code_hash)
        if invite_id is None or self.invite_docs[invite_id].used_by is not None:
            return False
        self.invite_docs[invite_id] = replace(self.invite_docs[invite_id], used_by=rid)
        self.claimed_at[code_hash] = now()
        return True

    async def give_back_invite(self, code_hash: str, rid: str) -> None:
        invite_id = self._invite_id(code_hash)
        if invite_id is not None and self.invite_docs[invite_id].used_by == rid:
            self.invite_docs[invite_id] = replace(self.invite_docs[invite_id], used_by=None)
            self.claimed_at.pop(code_hash, None)

    async def unsettled_claims(self, before: datetime) -> list[GuestInvite]:
        return [invite for invite in self.invite_docs.values()
                if invite.code_hash in self.claimed_at and self.claimed_at[invite.code_hash] <= before]

    async def settle_claim(self, code_hash: str, rid: str) -> None:
        if (invite := await self.invite(code_hash)) is not None and invite.used_by == rid:
            self.claimed_at.pop(code_hash, None)
