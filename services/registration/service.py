"""The registration service's use cases, each a short sequence of single-document writes ordered so that a crash
at any point leaves a state the reconciler finishes: a registration is stored `allocating` before it takes a
place, and marked `cancelling` before it gives one back. Every write that changes a registration carries the
message it causes (outbox), published at once and otherwise by the relay."""

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared import addresses, logs
from shared.batching import GroupCommit
from shared.messages import CloudEvent, make_event
from shared.messages.registration import (
    EventCancelled, EventPublished, EventUpdated, GuestInvited, RegistrationCancelled, RegistrationCheckedIn,
    RegistrationConfirmed, RegistrationErased, RegistrationPayload, RegistrationPending, RegistrationPromoted,
    RegistrationWaitlisted,
)
from shared.outbox import Outbox, entry
from shared.settings import Settings

from . import domain
from .models import EventIn, EventUpdate, RegistrationFilter, RegistrationIn
from .domain import Event, EventStatus, GuestInvite, Refused, Registration, Status
from .store import Duplicate, Store

NOT_FOUND = "Fann ikkje påmeldinga, eller lenkja er ikkje gyldig."
EVENT_NOT_FOUND = domain.EVENT_NOT_FOUND
RECENT = 1.0  # seconds an instance may use an event as read before (see _recent_event)
CANCELLABLE = (Status.confirmed, Status.waitlisted, Status.pending_confirmation)


def now() -> datetime:
    return datetime.now(UTC)


class Registrations:
    def __init__(self, store: Store, outbox: Outbox, settings: Settings, source: str,
                 confirmation_valid: timedelta, orphan_after: timedelta):
        self.store, self.outbox, self.settings, self.source = store, outbox, settings, source
        self.confirmation_valid, self.orphan_after = confirmation_valid, orphan_after
        self._recent: dict[str, tuple[float, Event]] = {}
        # Places (where, id) per event that the reconciler found held by a stored registration that needs nothing:
        # they stay so (a registration leaves a place before it is removed, and a move makes a new place), so
        # each is looked up once, not on every pass.
        self._sound: dict[str, set[tuple[str, str]]] = {}
        # The hot path's writes are group commits (shared.batching), each for all events: places, inserts, and
        # the publishing of their outbox entries.
        self._placing = GroupCommit(self._place)
        self._inserting = GroupCommit(lambda batch: self.store.insert_registrations(batch))
        self._publishing = GroupCommit(self._publish_registrations)

    def _entry(self, payload, subject: str, actor: str | None = None) -> dict:
        event: CloudEvent = make_event(payload, source=self.source, subject=subject,
                                       correlation_id=logs.request_id.get(), actor=actor)
        return entry(event)

    def _info(self, event: Event):
        return domain.event_info(event, self.settings.public_base_url)

    async def event(self, slug: str) -> Event:
        event = await self.store.event(slug)
        if event is None:
            raise Refused(EVENT_NOT_FOUND, 404)
        return event

    async def public_event(self, slug: str) -> Event:
        """A møteplass as anyone may see it: a draft is not there yet."""
        event = await self.event(slug)
        domain.check_public(event)
        return event

    async def listed_events(self) -> list[Event]:
        """The møteplassar anyone may see (drafts stay out), soonest first."""
        return await self.store.listed_events()

    # Møteplassar (admin)

    async def create_event(self, body: EventIn, actor: str | None = None) -> Event:
        domain.invalid(domain.schedule_problems(body.starts_at, body.ends_at, body.registration_opens_at,
                                                body.registration_closes_at))
        status = EventStatus.published if body.published else EventStatus.draft
        event = Event(**body.model_dump(exclude={"published"}), status=status, created_at=now(), created_by=actor)
        entries = [self._entry(EventPublished(event=self._info(event)), body.slug, actor)] if body.published else []
        try:
            await self.store.insert_event(event, entries)
        except Duplicate:
            raise Refused(f"Det finst alt ein møteplass med adressa «{body.slug}».") from None
        await self.outbox.try_flush(self.store.events, body.slug, entries)
        return await self.event(body.slug)

    async def update_event(self, slug: str, body: EventUpdate, actor: str | None = None) -> Event:
        event = await self.event(slug)
        changed = domain.changes(event, body.model_dump(exclude_unset=True))
        after = replace(event, **changed)
        domain.invalid(domain.schedule_problems(after.starts_at, after.ends_at, after.registration_opens_at,
                                                after.registration_closes_at))
        if "capacity" in changed:
            domain.check_capacity(event, changed["capacity"])
        noticed = [k for k in domain.NOTICEABLE if k in changed]
        if noticed:
            changed["sequence"] = event.sequence + 1
            after = replace(after, sequence=changed["sequence"])
        entries = [self._entry(EventUpdated(event=self._info(after), changed=noticed,
                                            previous_starts_at=event.starts_at), slug, actor)] if noticed else []
        updated = await self.store.update_event(event, {**changed, "updated_by": actor}, entries)
        self._recent.pop(slug, None)
        if updated is None:  # a seat was taken or another admin saved meanwhile: decide on fresh data
            current = await self.event(slug)
            if "capacity" in changed:
                domain.check_capacity(current, changed["capacity"])
            raise Refused("Møteplassen vart endra samstundes. Prøv igjen.")
        await self.outbox.try_flush(self.store.events, slug, entries)
        await self.promote_waiting(updated)  # a raised capacity gives the new seats away at once
        return await self.event(slug)

    async def publish_event(self, slug: str, actor: str | None = None) -> Event:
        event = await self.event(slug)
        if event.status == EventStatus.cancelled:
            raise Refused("Ein avlyst møteplass kan ikkje publiserast.")
        if event.status == EventStatus.published:
            return event
        entries = [self._entry(EventPublished(event=self._info(event)), slug, actor)]
        return await self._set_status(event, EventStatus.published, entries, {"published_by": actor})

    async def _set_status(self, event: Event, status: EventStatus, entries: list[dict], changes: dict) -> Event:
        changed = await self.store.update_event(event, {"status": status, **changes}, entries)
        self._recent.pop(event.slug, None)
        if changed is None:
            raise Refused("Møteplassen vart endra samstundes. Prøv igjen.")
        await self.outbox.try_flush(self.store.events, event.slug, entries)
        return changed

    async def cancel_event(self, slug: str, actor: str | None = None) -> Event:
        """Cancel a møteplass, then its registrations; cut short after the first write, the reconciler (or the same
        request again) cancels the registrations."""
        event = await self.event(slug)
        if event.status != EventStatus.cancelled:
            entries = [self._entry(EventCancelled(event=self._info(event), changed=["status"]), slug, actor)]
            event = await self._set_status(event, EventStatus.cancelled, entries, {"cancelled_by": actor})
        await self.store.mark_all_cancelling(slug, CANCELLABLE, "event_cancelled")
        async for registration in self.store.stuck((Status.cancelling,), now(), slug):
            await self._finish_cancel(registration)
        return event

    # Registering

    async def _recent_event(self, slug: str) -> Event:
        """The event as read at most RECENT ago by this instance: enough to check the window and the answers
        (the write that takes a place checks that the event is still published and unchanged since it was read)."""
        cached = self._recent.get(slug)
        if cached is None or cached[0] < time.monotonic():
            cached = self._recent[slug] = (time.monotonic() + RECENT, await self.event(slug))
        return cached[1]

    async def register(self, slug: str, body: RegistrationIn) -> Registration:
        event = await self._recent_event(slug)
        domain.check_public(event)
        domain.check_window(event, now())
        domain.invalid(domain.answer_problems(event.questions, body.answers)
                       + addresses.undeliverable("email", body.email, self.settings.smtp_utf8))
        at = now()
        rid = domain.new_registration_id()
        invite = await self._claim_invite(slug, body, rid) if body.invite_code else None
        try:
            return await self._register(event, body, rid, at, invite)
        except Refused:
            if invite:
                await self.store.give_back_invite(invite.code_hash, rid)
            raise

    async def _claim_invite(self, slug: str, body: RegistrationIn, rid: str) -> GuestInvite:
        code_hash = domain.hash_token(body.invite_code)
        invite = await self.store.invite(code_hash)
        domain.check_guest(invite, slug, domain.normalise_email(body.email),
                           body.municipality and body.municipality.model_dump())
        if not await self.store.use_invite(code_hash, rid):
            raise Refused("Invitasjonen er alt brukt.")
        return invite

    async def _register(self, event: Event, body: RegistrationIn, rid: str, at: datetime,
                        invite: GuestInvite | None) -> Registration:
        slug = event.slug
        token = domain.new_token()
        registration = Registration(
            id=rid, event_slug=slug, status=Status.allocating, email=domain.normalise_email(body.email),
            language=body.language, created_at=at, name=body.name, phone=body.phone, organisation=body.organisation,
            organisation_type=body.organisation_type,
            municipality=body.municipality and body.municipality.model_dump(), answers=body.answers,
            consent={"at": at, "privacy_version": body.privacy_version}, token_hashes=[domain.hash_token(token)],
            guest_of=invite and invite.inviter_id)
        if event.require_email_confirmation:
            # Double opt-in: nothing is held until the address has proved itself through the link.
            registration = replace(registration, status=Status.pending_confirmation,
                                   expires_at=at + self.confirmation_valid)
            message = self._payload(
                RegistrationPending, event, registration, token,
                confirm_url=domain.manage_url(self.settings.public_base_url, rid, token, "/confirm"),
                expires_at=registration.expires_at)
        else:
            # The place first, then the registration with its message in one insert: two writes. A crash between
            # them leaves a place without a registration, which the reconciler gives back (orphan).
            status, position, event = await self._placing.submit((slug, rid))
            registration = replace(registration, status=status, position=position)
            message = self._payload(RegistrationConfirmed if status is Status.confirmed else RegistrationWaitlisted,
                                    event, registration, token, **({"position": position} if position else {}))
        entries = [self._entry(message, rid)]
        if not await self._inserting.submit((registration, entries)):
            if registration.status != Status.pending_confirmation:
                await self.promote_waiting(await self.store.release(slug, rid))
            raise Refused("Denne e-postadressa er alt påmeld til møteplassen.")
        # Answered once stored: the message is safe in the registration's outbox. Publishing it (then clearing it)
        # runs off the request's path, for many at once; should this process die first, the relay publishes it.
        self._publishing.add((rid, entries))
        return registration

    async def _place(self, arrivals: list[tuple[str, str]]) -> list[tuple[Status, int | None, Event] | Refused]:
        """Places for a batch of registrations (slug, id) — new ones, and those whose address was just confirmed —
        each event's in arrival order, in one round trip for all their events: per event a compare-and-set on the
        event as last read, retried on fresh data when another instance or an admin changed it first. The one way
        a registration gets its first place; safe to repeat (one placed already keeps where it is)."""
        unplaced: dict[str, list[str]] = {}
        for slug, rid in arrivals:
            unplaced.setdefault(slug, [])
            if rid not in unplaced[slug]:
                unplaced[slug].append(rid)
        events = {slug: await self._recent_event(slug) for slug in unplaced}
        outcomes: dict[tuple[str, str], tuple[Status, int | None, Event] | Refused] = {}
        while unplaced:
            for slug in list(unplaced):  # placed by an earlier attempt cut short: where it is (the CAS below
                event = events[slug]  # only writes on an event unchanged since this read)
                for rid, where in domain.placements(event, unplaced[slug]).items():
                    outcomes[slug, rid] = (*where, event)
                    unplaced[slug].remove(rid)
                if not unplaced[slug]:
                    del unplaced[slug]
            plans = {slug: (rids, *domain.allocation(domain.seats_left(events[slug]), len(rids),
                                                     events[slug].waitlist_enabled))
                     for slug, rids in unplaced.items()}
            if not plans:
                break
            after = await self.store.take_places({
                slug: (events[slug], rids[:seats], rids[seats:seats + waiting])
                for slug, (rids, seats, waiting) in plans.items()})
            for slug, (rids, seats, waiting) in plans.items():
                event = events[slug] = after[slug]
                length = domain.batch_landed(event, rids[:seats], rids[seats:seats + waiting])
                if length is None:  # lost the race: again on the fresh data, unless it closed meanwhile
                    try:
                        domain.check_window(event, now())
                    except Refused as refused:
                        outcomes |= {(slug, rid): refused for rid in rids}
                        del unplaced[slug]
                    continue
                self._recent[slug] = (time.monotonic() + RECENT, event)  # as fresh as a read: under load, no reads
                for rid, where in zip(rids, domain.batch_placement(length, seats, waiting, len(rids))):
                    outcomes[slug, rid] = (*where, event) if where else Refused("Møteplassen er full.")
                del unplaced[slug]
        return [outcomes[arrival] for arrival in arrivals]

    async def _publish_registrations(self, batch: list[tuple[str, list[dict]]]) -> list[None]:
        await self.outbox.try_flush_many(self.store.registrations, batch)
        return [None] * len(batch)

    async def published(self) -> None:
        """Once the messages of every registration answered so far are published (or left to the relay, should
        the broker fail)."""
        await self._publishing.settled()

    async def confirm(self, rid: str, token: str) -> Registration:
        """The link in the double opt-in email: take a seat (or a waiting-list place) now, in confirmation order."""
        registration = await self.own(rid, token)
        if registration.status != Status.pending_confirmation:
            return registration  # confirmed before: the link may be used again harmlessly
        event = await self.event(registration.event_slug)
        domain.check_window(event, now())
        allocating = await self.store.confirm_email(rid, now())
        if allocating is None:
            raise Refused("Lenkja har gått ut. Meld deg på på nytt.", 410)
        return await self._allocate(allocating)

    async def _allocate(self, registration: Registration) -> Registration:
        """Give an `allocating` registration (an email just confirmed) its place; safe to repeat."""
        rid = registration.id
        try:
            status, position, event = await self._placing.submit((registration.event_slug, rid))
        except Refused:
            await self.store.delete_registration(rid, Status.allocating)  # nothing may stay behind
            raise
        if status is Status.confirmed:
            settled = await self._transition(event, registration, status, RegistrationConfirmed, {},
                                             only_from=(Status.allocating,))
        else:
            settled = await self._transition(event, registration, status, RegistrationWaitlisted,
                                             {"position": position}, only_from=(Status.allocating,),
                                             position=position)
        # None: a promotion or the reconciler settled it first; report what it is now.
        return settled or await self.store.registration(rid)

    def _payload(self, message: type[RegistrationPayload], event: Event, registration: Registration,
                 token: str | None, **fields) -> RegistrationPayload:
        return message(
            event=self._info(event), registration_id=registration.id, name=registration.name,
            email=registration.email, language=registration.language,
            status=fields.pop("status", registration.status),
            manage_url=token and domain.manage_url(self.settings.public_base_url, registration.id, token),
            **fields)

    async def _transition(self, event: Event, registration: Registration, status: Status,
                          message: type[RegistrationPayload], changes: dict, link: bool = True,
                          only_from: tuple[Status, ...] | None = None, actor: str | None = None,
                          **fields) -> Registration | None:
        """Move a registration to `status` (a move of domain.MOVES) and record the message saying so, with a fresh
        personal link, in one write (`actor`: the admin who did it, if one did)."""
        token = domain.new_token() if link else None
        payload = self._payload(message, event, registration, token, status=status, **fields)
        entries = [self._entry(payload, registration.id, actor)]
        settled = await self.store.transition(registration.id, status, changes, entries,
                                              token and domain.hash_token(token), only_from)
        if settled is not None:
            await self.outbox.try_flush(self.store.registrations, registration.id, entries)
        return settled

    # Self-service by secret link

    async def own(self, rid: str, token: str) -> Registration:
        registration = await self.store.registration(rid)
        if registration is None or not any(domain.token_matches(h, token) for h in registration.token_hashes):
            raise Refused(NOT_FOUND, 404)
        return registration

    async def view(self, rid: str, token: str) -> Registration:
        registration = await self.own(rid, token)
        if registration.status == Status.waitlisted:
            [registration] = self._with_positions(await self.event(registration.event_slug), [registration])
        return registration

    async def _found(self, rid: str, token: str | None) -> Registration:
        """The registration by its secret link (token), or by its id alone (for an admin: token None)."""
        registration = await (self.own(rid, token) if token else self.store.registration(rid))
        if registration is None:
            raise Refused("Fann ikkje påmeldinga.", 404)
        return registration

    async def cancel(self, rid: str, token: str | None = None, actor: str | None = None) -> None:
        """Cancel by the participant's secret link (token), or by an admin (token None; actor: who)."""
        registration = await self._found(rid, token)
        # Marked from the status just read only, so that the reason and the status it is cancelled from are true;
        # when it moved on meanwhile (promoted, say), it is cancelled from where it is now.
        while (status := registration.status) in CANCELLABLE:
            reason = domain.cancel_reason(status) if token else "admin"
            registration = await self.store.transition(
                rid, Status.cancelling, {"cancel_reason": reason, "cancelled_from": status, "cancelled_by": actor},
                [], only_from=(status,)) or await self._found(rid, token)
        if registration.status == Status.cancelling:  # marked now, or a cancel cut short: finish it
            await self._finish_cancel(registration)
        elif registration.status != Status.cancelled:  # a repeated cancel has nothing left to do
            raise Refused("Påmeldinga kan ikkje avmeldast no.")

    async def _finish_cancel(self, registration: Registration) -> None:
        event = await self.store.release(registration.event_slug, registration.id)
        # cancelled_from is None on a registration marked before it was kept: the message then says so.
        await self._transition(event, registration, Status.cancelled, RegistrationCancelled, {}, link=False,
                               reason=registration.cancel_reason, previous_status=registration.cancelled_from,
                               actor=registration.cancelled_by)
        await self.promote_waiting(event)

    async def invite_guest(self, rid: str, token: str, guest_email: str) -> GuestInvite:
        """A participant from a municipality invites one guest from outside it: a single-use code bound to the
        guest's email, counted against the municipality's quota for the event at once (atomically)."""
        registration = await self.own(rid, token)
        event = await self.event(registration.event_slug)
        domain.check_window(event, now())
        domain.invalid(addresses.undeliverable("email", guest_email, self.settings.smtp_utf8))
        guest_email = domain.normalise_email(guest_email)
        domain.check_can_invite(registration, event, guest_email)
        municipality, code = registration.municipality, domain.new_token()
        payload = GuestInvited(
            event=self._info(event), registration_id=rid, inviter_name=registration.name,
            municipality=municipality["name"], guest_email=guest_email, language=registration.language,
            invite_url=domain.invite_url(self.settings.public_base_url, event.slug, code, registration.language))
        entries = [self._entry(payload, rid)]
        invite = GuestInvite(event_slug=event.slug, municipality=municipality["number"],
                             municipality_name=municipality["name"], inviter_id=rid, guest_email=guest_email,
                             code_hash=domain.hash_token(code), created_at=now())
        invite_id = await self.store.insert_invite(invite, event.guests_per_municipality, entries)
        if invite_id is None:
            raise Refused(f"{municipality['name']} har alt invitert så mange gjester som møteplassen tillèt "
                          f"({event.guests_per_municipality}).")
        await self.outbox.try_flush(self.store.invites, invite_id, entries)
        return invite

    async def change_answers(self, rid: str, token: str, answers: dict) -> Registration:
        registration = await self.own(rid, token)
        domain.check_changeable(registration)
        event = await self.event(registration.event_slug)
        domain.invalid(domain.answer_problems(event.questions, answers))
        changed = await self.store.set_answers(rid, answers, domain.CHANGEABLE)
        if changed is None:  # cancelled meanwhile
            domain.check_changeable(await self.own(rid, token))
        return changed

    async def own_data(self, rid: str, token: str) -> dict:
        registration = await self.own(rid, token)
        return domain.own_data(registration, await self.event(registration.event_slug))

    # Admin

    async def registrations_of(self, slug: str, query: RegistrationFilter) -> tuple[list[Registration], str | None]:
        event = await self.event(slug)
        page = await self.store.registrations_of(
            slug, statuses=query.status and [query.status], organisation_type=query.organisation_type,
            municipality=query.municipality, after=query.cursor, limit=query.limit + 1)
        more = len(page) > query.limit
        page = self._with_positions(event, page[:query.limit])
        return page, page[-1].id if more else None

    @staticmethod
    def _with_positions(event: Event, registrations: list[Registration]) -> list[Registration]:
        placed = domain.placements(event, (r.id for r in registrations))
        return [replace(r, position=placed.get(r.id, (None, None))[1]) for r in registrations]

    async def export(self, slug: str) -> str:
        event = await self.event(slug)
        active = await self.store.registrations_of(slug, statuses=(*domain.ACTIVE, Status.pending_confirmation))
        return domain.registrations_csv(event, active)

    async def participants(self, slug: str, query: str = "") -> list[Registration]:
        """Who may come (seat holders, checked in or not), by name; those whose name matches the query, if any."""
        await self.event(slug)
        found = await self.store.registrations_of(slug, statuses=(Status.confirmed, Status.checked_in))
        return sorted((r for r in found if domain.name_matches(r.name, query)), key=lambda r: r.name.casefold())

    async def counts(self, slug: str) -> dict[str, int]:
        """Registrations per status; after the retention purge, the counts as they were before it."""
        event = await self.event(slug)
        return event.final_counts or await self.store.counts(slug)

    async def check_in(self, rid: str, actor: str | None = None) -> Registration:
        registration = await self.store.registration(rid)
        if registration is None:
            raise Refused("Fann ikkje påmeldinga.", 404)
        if registration.status == Status.checked_in:
            return registration
        event = await self.event(registration.event_slug)
        checked = await self._transition(event, registration, Status.checked_in, RegistrationCheckedIn,
                                         {"checked_in_by": actor}, link=False, actor=actor)
        if checked is None:
            raise Refused("Berre deltakarar med stadfesta plass kan sjekkast inn.")
        return checked

    # Erasure (GDPR)

    async def erase(self, rid: str, reason: str, token: str | None = None, actor: str | None = None) -> None:
        """Remove a person's data (on request: by their link, or by an admin: actor), give back what they held,
        and tell the other services to remove their copies."""
        registration = await self._found(rid, token)
        if registration.status == Status.erased:
            return
        marked = await self.store.transition(rid, Status.erasing, {"erase_reason": reason, "erased_by": actor}, [])
        if marked is not None:
            await self._finish_erase(marked)

    async def _finish_erase(self, registration: Registration) -> None:
        rid = registration.id
        event = await self.store.release(registration.event_slug, rid)
        entries = [self._entry(RegistrationErased(registration_id=rid, event_slug=registration.event_slug,
                                                  email=registration.email, reason=registration.erase_reason),
                               rid, registration.erased_by)]
        if await self.store.erase(rid, entries) is not None:
            await self.outbox.try_flush(self.store.registrations, rid, entries)
        await self.promote_waiting(event)

    async def purge_past_events(self) -> None:
        """Erase the personal data of møteplassar whose retention is over; counts by status stay. Safe with
        several instances: each erasure is a conditional step, and an erased registration is skipped."""
        for event in await self.store.events_keeping_personal_data():
            if not domain.retention_over(event, now()):
                continue
            if event.personal_data == "kept":  # else a purge cut short: finish it
                await self.store.start_purge(event.slug, await self.store.counts(event.slug))
            kept = await self.store.registrations_of(event.slug, statuses=set(Status) - {Status.erased})
            for registration in kept:
                await self.erase(registration.id, "retention")
            await self.store.end_purge(event.slug)

    # The waiting list

    async def promote_waiting(self, event: Event) -> None:
        """Give every free seat to the first in line, at once; safe with other instances doing the same."""
        slug = event.slug
        while (first := domain.next_in_line(event, now())) is not None:
            moved = await self.store.promote(slug, first)
            if moved is None:  # another instance changed the list first: look again
                event = await self.event(slug)
                continue
            await self._settle_promotion(moved, first)
            event = moved

    async def _settle_promotion(self, event: Event, rid: str) -> None:
        registration = await self.store.registration(rid)
        if registration is not None:
            await self._transition(event, registration, Status.confirmed, RegistrationPromoted, {"position": None})

    # Recovery and upkeep

    async def _settle_invite_claims(self) -> None:
        """A guest's code claimed by a request that died before storing its registration is given back (as a
        place is: after orphan_after, no request is still on its way)."""
        claims = await self.store.unsettled_claims(now() - self.orphan_after)
        statuses = await self.store.statuses([claim.used_by for claim in claims]) if claims else {}
        for claim in claims:
            if claim.used_by in statuses:
                await self.store.settle_claim(claim.code_hash, claim.used_by)
            else:
                await self.store.give_back_invite(claim.code_hash, claim.used_by)

    async def reconcile(self, grace: timedelta) -> None:
        """Finish flows a crash cut short (all steps are idempotent, so several instances may run this), and
        remove registrations whose email was never confirmed."""
        before = now() - grace
        await self.store.delete_expired_pending(now())
        # All in one read (not one per event): every step below is a compare-and-set or idempotent, so an event
        # read a moment earlier is as good.
        upcoming = await self.store.upcoming_events(now())
        for event in upcoming:
            if event.status == EventStatus.cancelled:  # a cancel cut short may have left registrations active
                await self.store.mark_all_cancelling(event.slug, CANCELLABLE, "event_cancelled")
        async for registration in self.store.stuck((Status.allocating,), before):
            try:
                await self._allocate(registration)
            except Refused:
                pass  # full without a waiting list: _allocate removed it
        async for registration in self.store.stuck((Status.cancelling,), before):
            await self._finish_cancel(registration)
        async for registration in self.store.stuck((Status.erasing,), before):
            await self._finish_erase(registration)
        await self._settle_invite_claims()
        places = {event.slug: {("seats", rid) for rid in event.seats} | {("waitlist", rid) for rid in event.waitlist}
                  for event in upcoming}
        self._sound = {slug: self._sound.get(slug, set()) & held for slug, held in places.items()}
        unchecked = {slug: held - self._sound[slug] for slug, held in places.items()}
        rids = [rid for held in unchecked.values() for _, rid in held]
        statuses = await self.store.statuses(rids) if rids else {}  # of every event's unchecked places, in one read
        for event in upcoming:
            slug, sound = event.slug, self._sound[event.slug]
            for where, rid in unchecked[slug]:
                if rid not in statuses:
                    if domain.created_at(rid) <= now() - self.orphan_after:
                        event = await self.store.release(slug, rid)  # its request died before storing it
                elif statuses[rid] == Status.waitlisted and where == "seats":
                    await self._settle_promotion(event, rid)  # a promotion cut short
                else:
                    sound.add((where, rid))
            await self.promote_waiting(event)
