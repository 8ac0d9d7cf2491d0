"""The registration service's use cases, each a short sequence of single-document writes ordered so that a crash
at any point leaves a state the reconciler finishes: a registration is stored `allocating` before it takes a
place, and marked `cancelling` before it gives one back. Every write that changes a registration carries the
message it causes (outbox), published at once and otherwise by the relay."""

import uuid
from datetime import UTC, datetime, timedelta

from shared import logs
from shared.messages import CloudEvent, make_event
from shared.messages.registration import (
    EventPublished, RegistrationCancelled, RegistrationConfirmed, RegistrationPayload, RegistrationPromoted,
    RegistrationWaitlisted,
)
from shared.outbox import Outbox, entry
from shared.settings import Settings

from . import domain
from .api import EventIn, RegistrationIn
from .domain import Refused, Status
from .store import Duplicate, Store

NOT_FOUND = "Fann ikkje påmeldinga, eller lenkja er ikkje gyldig."


def now() -> datetime:
    return datetime.now(UTC)


class Registrations:
    def __init__(self, store: Store, outbox: Outbox, settings: Settings, source: str):
        self.store, self.outbox, self.settings, self.source = store, outbox, settings, source

    def _message(self, payload, subject: str) -> CloudEvent:
        return make_event(payload, source=self.source, subject=subject, correlation_id=logs.request_id.get())

    async def event(self, slug: str) -> dict:
        event = await self.store.event(slug)
        if event is None:
            raise Refused("Fann ikkje møteplassen.", 404)
        return event

    async def create_event(self, body: EventIn) -> dict:
        doc = {"_id": body.slug, **body.model_dump(exclude={"slug"}, mode="python"), "sequence": 0,
               "created_at": now()}
        doc.update(seats=[], waitlist=[])
        entries = [entry(self._message(EventPublished(event=domain.event_info(doc, self.settings.public_base_url)),
                                       body.slug))]
        try:
            await self.store.insert_event(doc, entries)
        except Duplicate:
            raise Refused(f"Det finst alt ein møteplass med adressa «{body.slug}».") from None
        await self.outbox.try_flush(self.store.events, body.slug, entries)
        return doc

    # Registering

    async def register(self, slug: str, body: RegistrationIn) -> dict:
        event = await self.event(slug)
        domain.check_window(event, now())
        at = now()
        registration = {
            "_id": uuid.uuid4().hex, "event_slug": slug, "status": Status.allocating.value,
            "email": domain.normalise_email(body.email), "name": body.name, "organisation": body.organisation,
            "language": body.language.value, "consent_at": at, "token_hashes": [], "created_at": at,
        }
        try:
            await self.store.insert_registration(registration)
        except Duplicate:
            raise Refused("Denne e-postadressa er alt påmeld til møteplassen.") from None
        return await self._allocate(event, registration)

    async def _allocate(self, event: dict, registration: dict) -> dict:
        """Give an `allocating` registration a seat, or else a place on the waiting list; safe to repeat."""
        slug, rid = event["_id"], registration["_id"]
        placed = (await self.store.take_seat(slug, rid) or await self.store.join_waitlist(slug, rid)
                  or await self.store.event(slug))  # placed by an earlier, interrupted attempt
        status, position = domain.placement(placed, rid)
        if status is Status.confirmed:
            settled = await self._transition(event, registration, (Status.allocating,), RegistrationConfirmed,
                                             {"status": status.value})
        else:
            settled = await self._transition(event, registration, (Status.allocating,), RegistrationWaitlisted,
                                             {"status": status.value, "position": position}, position=position)
        # None: a promotion or the reconciler settled it first; report what it is now.
        return settled or await self.store.registration(rid)

    async def _transition(self, event: dict, registration: dict, expected: tuple[Status, ...],
                          message: type[RegistrationPayload], changes: dict, link: bool = True, **fields) -> dict | None:
        """Change a registration and record the message saying so, with a fresh personal link, in one write."""
        token = domain.new_token() if link else None
        payload = message(
            event=domain.event_info(event, self.settings.public_base_url), registration_id=registration["_id"],
            name=registration["name"], email=registration["email"], language=registration["language"],
            status=changes["status"],
            manage_url=token and domain.manage_url(self.settings.public_base_url, registration["_id"], token),
            **fields)
        entries = [entry(self._message(payload, registration["_id"]))]
        settled = await self.store.transition(registration["_id"], expected, changes, entries,
                                              token and domain.hash_token(token))
        if settled is not None:
            await self.outbox.try_flush(self.store.registrations, registration["_id"], entries)
        return settled

    # Self-service by secret link

    async def own(self, rid: str, token: str) -> dict:
        registration = await self.store.registration(rid)
        if registration is None or not any(domain.token_matches(h, token) for h in registration["token_hashes"]):
            raise Refused(NOT_FOUND, 404)
        return registration

    async def view(self, rid: str, token: str) -> dict:
        registration = await self.own(rid, token)
        if registration["status"] == Status.waitlisted:
            event = await self.event(registration["event_slug"])
            registration = {**registration, "position": (domain.placement(event, rid) or (None, None))[1]}
        return registration

    async def cancel(self, rid: str, token: str) -> None:
        registration = await self.own(rid, token)
        if registration["status"] in (Status.cancelled, Status.cancelling):
            marked = registration  # a repeated or interrupted cancel: finish it
        else:
            marked = await self.store.transition(
                rid, (Status.confirmed, Status.waitlisted, Status.pending_confirmation),
                {"status": Status.cancelling.value, "cancel_reason": domain.cancel_reason(registration["status"])},
                [])
            if marked is None:
                raise Refused("Påmeldinga kan ikkje avmeldast no.")
        if marked["status"] == Status.cancelling:
            await self._finish_cancel(marked)

    async def _finish_cancel(self, registration: dict) -> None:
        event = await self.store.release(registration["event_slug"], registration["_id"])
        await self._transition(event, registration, (Status.cancelling,), RegistrationCancelled,
                               {"status": Status.cancelled.value}, link=False, reason=registration["cancel_reason"])
        await self.promote_waiting(event)

    # The waiting list

    async def promote_waiting(self, event: dict) -> None:
        """Give every free seat to the first in line, at once; safe with other instances doing the same."""
        slug = event["_id"]
        while (first := domain.next_in_line(event)) is not None:
            moved = await self.store.promote(slug, first)
            if moved is None:  # another instance changed the list first: look again
                event = await self.event(slug)
                continue
            await self._settle_promotion(moved, first)
            event = moved

    async def _settle_promotion(self, event: dict, rid: str) -> None:
        registration = await self.store.registration(rid)
        if registration is not None:
            await self._transition(event, registration, (Status.waitlisted, Status.allocating), RegistrationPromoted,
                                   {"status": Status.confirmed.value, "position": None})

    # Recovery

    async def reconcile(self, grace: timedelta) -> None:
        """Finish flows a crash cut short (all steps are idempotent, so several instances may run this)."""
        before = now() - grace
        async for registration in self.store.stuck((Status.allocating,), before):
            await self._allocate(await self.event(registration["event_slug"]), registration)
        async for registration in self.store.stuck((Status.cancelling,), before):
            await self._finish_cancel(registration)
        for slug in await self.store.upcoming_slugs(now()):
            event = await self.event(slug)
            for registration in await self.store.waitlisted_among(event["seats"]):
                await self._settle_promotion(event, registration["_id"])
            await self.promote_waiting(event)
