"""Use cases of services/registration/service.py run over the in-memory store and outbox (fakes.py): no MongoDB,
no RabbitMQ, milliseconds each. What they check: the places taken, the statuses stored and the messages the use
case publishes. The batching (GroupCommit) runs as in production; the store's own semantics are the fake's.

A crash is a store method that raises once where the process would have died; the reconciler then finishes what
it left. Time moves by setting the service's clock (service.now)."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from services.registration import domain, service
from services.registration.domain import EventStatus, Refused, Registration, Status
from services.registration.models import EventIn, EventUpdate, RegistrationFilter, RegistrationIn
from services.registration.service import Registrations
from shared.settings import Settings
from tests.support.fake_outbox import FakeOutbox

from .fakes import FakeStore

SLUG = "innovasjonsjam"
ADMIN = "kari@baerum.kommune.no"
STARTS = datetime.now(UTC) + timedelta(days=30)
BAERUM = {"organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"}}
ASKER = {"organisation_type": "kommune", "municipality": {"number": "3203", "name": "Asker"}}


def event_in(slug: str = SLUG, **fields) -> EventIn:
    return EventIn(**{"slug": slug, "title": "Innovasjonsjam", "starts_at": STARTS,
                      "ends_at": STARTS + timedelta(hours=6), "venue": "Bærum rådhus", "capacity": 1, **fields})


@pytest.fixture
async def flows() -> Registrations:
    """The registration service over fakes, with one published møteplass of one seat (SLUG)."""
    flows = Registrations(FakeStore(), FakeOutbox(), Settings(jwt_secret="unit-test-secret-long-enough-for-hs256"),
                          "/moteplass/registration", confirmation_valid=timedelta(days=1),
                          orphan_after=timedelta(minutes=5))
    await flows.create_event(event_in())
    return flows


@pytest.fixture
def clock(monkeypatch):
    """Sets the service's time: clock(timedelta(days=2)) is two days from now."""
    def move(by: timedelta) -> None:
        later = datetime.now(UTC) + by
        monkeypatch.setattr(service, "now", lambda: later)
    return move


def person(n: int, **fields) -> RegistrationIn:
    return RegistrationIn(**{"name": f"Deltakar {n}", "email": f"deltakar{n}@example.no",
                             "organisation": "Bærum kommune", "consent": True, **fields})


async def register(flows: Registrations, n: int, slug: str = SLUG, **fields) -> Registration:
    registration = await flows.register(slug, person(n, **fields))
    await flows.published()  # its message leaves off the request's path
    return registration


def messages(flows: Registrations, routing_key: str, rid: str | None = None) -> list[dict]:
    """The messages published under a routing key (about one registration, if given)."""
    return [m for m in flows.outbox.messages(routing_key) if rid is None or m["data"]["registration_id"] == rid]


def query_of(url: str, name: str) -> str:
    return parse_qs(urlparse(url).query)[name][0]


def token_in(flows: Registrations, routing_key: str, rid: str) -> str:
    """The personal link's token in the last message of this kind about rid."""
    return query_of(messages(flows, routing_key, rid)[-1]["data"]["manage_url"], "token")


async def status_of(flows: Registrations, rid: str) -> Status | None:
    registration = await flows.store.registration(rid)
    return registration and registration.status


def crash(store: FakeStore, method: str, when=lambda *args: True) -> None:
    """The next call of a store method (that `when` its arguments) raises, as if the process died there."""
    original = getattr(store, method)

    async def died(*args, **kwargs):
        if not when(*args):
            return await original(*args, **kwargs)
        delattr(store, method)
        raise RuntimeError("the process died here")
    setattr(store, method, died)


# ---- møteplassar (admin) ----------------------------------------------------------------------------------------

async def test_a_new_møteplass_is_announced_naming_the_admin(flows):
    await flows.create_event(event_in("verkstad", capacity=40), ADMIN)
    [published] = [m for m in flows.outbox.messages("event.published.v1") if m["data"]["event"]["slug"] == "verkstad"]
    assert published["authid"] == ADMIN
    created = await flows.event("verkstad")
    assert (created.status, created.created_by, domain.seats_left(created)) == (EventStatus.published, ADMIN, 40)
    assert [e.slug for e in await flows.listed_events()] == [SLUG, "verkstad"]


async def test_a_draft_is_there_for_admins_only_until_published(flows):
    await flows.create_event(event_in("utkast", published=False), ADMIN)
    assert not [m for m in flows.outbox.messages("event.published.v1") if m["data"]["event"]["slug"] == "utkast"]
    assert [e.slug for e in await flows.listed_events()] == [SLUG]
    for refused in (flows.public_event("utkast"), register(flows, 1, "utkast")):
        with pytest.raises(Refused) as nowhere:
            await refused
        assert nowhere.value.status == 404

    published = await flows.publish_event("utkast", ADMIN)
    assert (published.status, published.published_by) == (EventStatus.published, ADMIN)
    await flows.publish_event("utkast", ADMIN)  # again: nothing more
    [message] = [m for m in flows.outbox.messages("event.published.v1") if m["data"]["event"]["slug"] == "utkast"]
    assert message["authid"] == ADMIN
    assert (await register(flows, 1, "utkast")).status == Status.confirmed


async def test_a_slug_is_taken_once(flows):
    with pytest.raises(Refused) as taken:
        await flows.create_event(event_in(title="Ein annan"))
    assert taken.value.status == 409
    assert (await flows.event(SLUG)).title == "Innovasjonsjam"


async def test_times_out_of_order_are_refused_field_by_field_and_nothing_is_stored(flows):
    with pytest.raises(Refused) as invalid:
        await flows.create_event(event_in("baklengs", ends_at=STARTS - timedelta(hours=1)))
    assert (invalid.value.status, [d["field"] for d in invalid.value.details]) == (422, ["ends_at"])
    assert await flows.store.event("baklengs") is None
    with pytest.raises(Refused):
        await flows.update_event(SLUG, EventUpdate(registration_closes_at=STARTS + timedelta(hours=1)), ADMIN)
    assert (await flows.event(SLUG)).registration_closes_at is None


async def test_a_new_time_or_place_is_announced_and_other_changes_are_not(flows):
    await flows.update_event(SLUG, EventUpdate(title="Innovasjonsjam 2026"), ADMIN)
    assert not flows.outbox.messages("event.updated.v1")
    later = STARTS + timedelta(days=1)
    updated = await flows.update_event(SLUG, EventUpdate(venue="Sandvika", starts_at=later,
                                                         ends_at=later + timedelta(hours=6)), ADMIN)
    [message] = flows.outbox.messages("event.updated.v1")
    assert (message["data"]["changed"], message["authid"]) == (["starts_at", "ends_at", "venue"], ADMIN)
    assert datetime.fromisoformat(message["data"]["previous_starts_at"]) == STARTS
    assert (message["data"]["event"]["venue"], message["data"]["event"]["sequence"]) == ("Sandvika", 1)
    assert (updated.venue, updated.starts_at, updated.sequence, updated.updated_by) == ("Sandvika", later, 1, ADMIN)


async def test_a_raised_capacity_gives_the_new_seats_to_the_first_in_line(flows):
    first, second, third, fourth = [await register(flows, n) for n in (1, 2, 3, 4)]
    await flows.update_event(SLUG, EventUpdate(capacity=3), ADMIN)
    promoted = [m["data"]["registration_id"] for m in flows.outbox.messages("registration.promoted.v1")]
    assert promoted == [second.id, third.id]
    event = await flows.event(SLUG)
    assert (event.seats, event.waitlist) == ([first.id, second.id, third.id], [fourth.id])
    assert [await status_of(flows, r.id) for r in (second, third, fourth)] == [
        Status.confirmed, Status.confirmed, Status.waitlisted]


async def test_the_capacity_cannot_fall_below_the_seats_held(flows):
    await flows.update_event(SLUG, EventUpdate(capacity=2), ADMIN)
    await register(flows, 1)
    await register(flows, 2)
    with pytest.raises(Refused, match=r"\(2\)"):
        await flows.update_event(SLUG, EventUpdate(capacity=1), ADMIN)
    assert (await flows.event(SLUG)).capacity == 2


async def test_an_admin_change_crossing_another_is_refused_whole(flows):
    write = flows.store.update_event

    async def another_admin_first(event, changed, entries):
        await write(event, {"title": "Endra av ein annan"}, [])
        return await write(event, changed, entries)
    flows.store.update_event = another_admin_first
    with pytest.raises(Refused, match="samstundes"):
        await flows.update_event(SLUG, EventUpdate(venue="Sandvika"), ADMIN)
    assert (await flows.event(SLUG)).venue == "Bærum rådhus"
    assert not flows.outbox.messages("event.updated.v1")


async def test_cancelling_a_møteplass_cancels_every_registration_and_promotes_no_one(flows):
    await flows.create_event(event_in("stadfest", require_email_confirmation=True))
    seated, waiting = await register(flows, 1), await register(flows, 2)
    pending = await register(flows, 3, "stadfest")
    cancelled = await flows.cancel_event(SLUG, ADMIN)
    assert (cancelled.status, cancelled.cancelled_by) == (EventStatus.cancelled, ADMIN)
    [announced] = flows.outbox.messages("event.cancelled.v1")
    assert announced["authid"] == ADMIN
    told = {m["data"]["registration_id"]: (m["data"]["reason"], m["data"]["previous_status"])
            for m in flows.outbox.messages("registration.cancelled.v2")}
    assert told == {seated.id: ("event_cancelled", "confirmed"), waiting.id: ("event_cancelled", "waitlisted")}
    assert not flows.outbox.messages("registration.promoted.v1")
    assert (await flows.event(SLUG)).seats == []
    await flows.cancel_event(SLUG, ADMIN)  # again: nothing more
    assert len(flows.outbox.messages("event.cancelled.v1")) == 1
    await flows.cancel_event("stadfest", ADMIN)  # a registration still to be confirmed is cancelled as well
    assert await status_of(flows, pending.id) == Status.cancelled
    with pytest.raises(Refused, match="avlyst"):
        await register(flows, 4)
    with pytest.raises(Refused, match="avlyst"):
        await flows.publish_event(SLUG, ADMIN)


# ---- registering ------------------------------------------------------------------------------------------------

async def test_register_takes_a_free_seat(flows):
    me = await register(flows, 1)
    assert me.status == Status.confirmed
    assert (await flows.event(SLUG)).seats == [me.id]
    [message] = flows.outbox.messages("registration.confirmed.v1")
    assert message["data"]["registration_id"] == me.id and message["subject"] == me.id
    assert message["authid"] is None


async def test_a_full_event_puts_the_next_on_the_waiting_list(flows):
    await register(flows, 1)
    second = await register(flows, 2)
    assert (second.status, second.position) == (Status.waitlisted, 1)
    event = await flows.event(SLUG)
    assert (domain.seats_left(event), event.waitlist) == (0, [second.id])
    assert [m["data"]["position"] for m in flows.outbox.messages("registration.waitlisted.v1")] == [1]


async def test_full_without_a_waiting_list_is_refused_and_nothing_is_stored(flows):
    await flows.create_event(event_in("lite", waitlist_enabled=False))
    await register(flows, 1, "lite")
    with pytest.raises(Refused, match="full"):
        await register(flows, 2, "lite")
    assert [r.name for r in await flows.store.registrations_of("lite")] == ["Deltakar 1"]
    assert (await flows.event("lite")).waitlist == []
    assert len(flows.outbox.messages("registration.confirmed.v1")) == 1
    assert not flows.outbox.messages("registration.waitlisted.v1")


async def test_the_same_address_twice_is_refused_and_holds_nothing(flows):
    await register(flows, 1)
    with pytest.raises(Refused, match="alt påmeld"):
        await register(flows, 1, name="Same person, other case", email="DELTAKAR1@example.no")
    assert (await flows.event(SLUG)).waitlist == []


async def test_a_cancelled_address_may_register_again(flows):
    first = await register(flows, 1)
    await flows.cancel(first.id, token_in(flows, "registration.confirmed.v1", first.id))
    again = await register(flows, 1)
    assert again.status == Status.confirmed and again.id != first.id


async def test_registration_before_it_opens_is_refused_with_when(flows):
    await flows.create_event(event_in("seinare", registration_opens_at=STARTS - timedelta(days=1)))
    with pytest.raises(Refused, match="opnar"):
        await register(flows, 1, "seinare")
    assert await flows.store.registrations_of("seinare") == []


async def test_answers_must_fit_the_questions(flows):
    await flows.create_event(event_in("sporsmal", questions=[
        {"id": "diett", "text": "Diett", "kind": "single_choice", "options": ["vegan", "ingen"], "required": True}]))
    with pytest.raises(Refused) as invalid:
        await register(flows, 1, "sporsmal", answers={"diett": "kjøt"})
    assert (invalid.value.status, [d["field"] for d in invalid.value.details]) == (422, ["answers.diett"])
    me = await register(flows, 1, "sporsmal", answers={"diett": "vegan"})
    assert (await flows.store.registration(me.id)).answers == {"diett": "vegan"}


async def test_with_double_opt_in_nothing_is_held_until_the_address_is_confirmed(flows):
    await flows.create_event(event_in("stadfest", require_email_confirmation=True))
    pending = await register(flows, 1, "stadfest")
    assert pending.status == Status.pending_confirmation
    assert (await flows.event("stadfest")).seats == []
    [message] = messages(flows, "registration.pending.v1", pending.id)
    assert urlparse(message["data"]["confirm_url"]).path.endswith(f"/registrations/{pending.id}/manage/confirm")
    token = query_of(message["data"]["confirm_url"], "token")

    confirmed = await flows.confirm(pending.id, token)
    assert confirmed.status == Status.confirmed
    assert (await flows.event("stadfest")).seats == [pending.id]
    assert await flows.confirm(pending.id, token) == confirmed  # the link used again: nothing more
    assert len(messages(flows, "registration.confirmed.v1", pending.id)) == 1


async def test_places_go_in_the_order_addresses_are_confirmed(flows):
    await flows.create_event(event_in("stadfest", require_email_confirmation=True))
    early, late = await register(flows, 1, "stadfest"), await register(flows, 2, "stadfest")
    confirm_token = {r.id: query_of(messages(flows, "registration.pending.v1", r.id)[0]["data"]["confirm_url"],
                                    "token") for r in (early, late)}
    assert (await flows.confirm(late.id, confirm_token[late.id])).status == Status.confirmed
    waiting = await flows.confirm(early.id, confirm_token[early.id])
    assert (waiting.status, waiting.position) == (Status.waitlisted, 1)
    [message] = messages(flows, "registration.waitlisted.v1", early.id)
    assert message["data"]["position"] == 1


async def test_an_expired_confirmation_link_is_gone_and_the_address_free(flows, clock):
    await flows.create_event(event_in("stadfest", require_email_confirmation=True))
    pending = await register(flows, 1, "stadfest")
    token = query_of(messages(flows, "registration.pending.v1", pending.id)[0]["data"]["confirm_url"], "token")
    clock(timedelta(days=2))
    with pytest.raises(Refused) as expired:
        await flows.confirm(pending.id, token)
    assert expired.value.status == 410
    await flows.reconcile(timedelta(0))
    assert await flows.store.registration(pending.id) is None
    assert (await register(flows, 1, "stadfest")).status == Status.pending_confirmation


# ---- guests: each municipality may bring one from outside it -------------------------------------------------------

async def invite(flows: Registrations, host: Registration, email: str):
    return await flows.invite_guest(host.id, token_in(flows, "registration.confirmed.v1", host.id), email)


def invite_code(flows: Registrations, host: Registration) -> str:
    return query_of(messages(flows, "registration.guest_invited.v1", host.id)[-1]["data"]["invite_url"], "invite")


@pytest.fixture
async def baerum_host(flows) -> Registration:
    await flows.update_event(SLUG, EventUpdate(capacity=10), ADMIN)
    return await register(flows, 1, **BAERUM)


async def test_a_participant_from_a_municipality_brings_one_guest_from_outside(flows, baerum_host):
    invited = await invite(flows, baerum_host, "Gjest@Nettverk.example.no")
    assert (invited.guest_email, invited.municipality_name) == ("gjest@nettverk.example.no", "Bærum")
    [message] = messages(flows, "registration.guest_invited.v1", baerum_host.id)
    assert (message["data"]["guest_email"], message["data"]["inviter_name"], message["data"]["municipality"]) == (
        "gjest@nettverk.example.no", "Deltakar 1", "Bærum")
    assert urlparse(message["data"]["invite_url"]).path == f"/events/{SLUG}/register"

    guest = await register(flows, 9, email="gjest@nettverk.example.no", invite_code=invite_code(flows, baerum_host))
    assert (guest.status, guest.guest_of) == (Status.confirmed, baerum_host.id)


async def test_a_municipality_has_one_guest_whoever_invites(flows, baerum_host):
    colleague = await register(flows, 2, **BAERUM)
    await invite(flows, baerum_host, "gjest@nettverk.example.no")
    with pytest.raises(Refused, match="Bærum har alt invitert"):
        await invite(flows, colleague, "gjest2@nettverk.example.no")
    assert not messages(flows, "registration.guest_invited.v1", colleague.id)
    asker = await register(flows, 3, **ASKER)  # another municipality has a guest of its own
    await invite(flows, asker, "gjest3@nettverk.example.no")


async def test_a_guest_code_is_for_its_own_address_from_outside_and_works_once(flows, baerum_host):
    await invite(flows, baerum_host, "gjest@nettverk.example.no")
    code = invite_code(flows, baerum_host)
    with pytest.raises(Refused) as other_address:
        await register(flows, 8, email="nokon.annan@example.no", invite_code=code)
    assert (other_address.value.status, other_address.value.details[0]["field"]) == (422, "email")
    with pytest.raises(Refused, match="utanfor Bærum"):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code, **BAERUM)
    with pytest.raises(Refused) as unknown:
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code="ikkje-ein-kode")
    assert unknown.value.details[0]["field"] == "invite_code"

    guest = await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
    await flows.cancel(guest.id, token_in(flows, "registration.confirmed.v1", guest.id))
    with pytest.raises(Refused, match="alt brukt"):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)


async def test_a_refused_registration_gives_its_guest_code_back(flows, baerum_host):
    await invite(flows, baerum_host, "gjest@nettverk.example.no")
    code = invite_code(flows, baerum_host)
    direct = await register(flows, 9, email="gjest@nettverk.example.no")  # registered already, without the code
    with pytest.raises(Refused, match="alt påmeld"):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
    await flows.cancel(direct.id, token_in(flows, "registration.confirmed.v1", direct.id))
    assert (await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)).guest_of == baerum_host.id


async def test_only_a_seat_holder_may_invite(flows):
    await register(flows, 1, **BAERUM)
    waiting = await register(flows, 2, **ASKER)
    with pytest.raises(Refused, match="stadfesta plass"):
        await flows.invite_guest(waiting.id, token_in(flows, "registration.waitlisted.v1", waiting.id),
                                 "gjest@nettverk.example.no")
    assert not flows.outbox.messages("registration.guest_invited.v1")


# ---- cancelling and the waiting list -----------------------------------------------------------------------------

async def test_a_cancelled_seat_goes_to_the_first_in_line(flows):
    first, second, third = [await register(flows, n) for n in (1, 2, 3)]
    await flows.cancel(first.id, token_in(flows, "registration.confirmed.v1", first.id))
    assert await status_of(flows, first.id) == Status.cancelled
    assert await status_of(flows, second.id) == Status.confirmed
    event = await flows.event(SLUG)
    assert (event.seats, event.waitlist) == ([second.id], [third.id])
    [cancelled] = flows.outbox.messages("registration.cancelled.v2")
    assert (cancelled["data"]["reason"], cancelled["data"]["previous_status"]) == ("participant", "confirmed")
    assert [m["data"]["registration_id"] for m in flows.outbox.messages("registration.promoted.v1")] == [second.id]
    third_token = token_in(flows, "registration.waitlisted.v1", third.id)
    assert (await flows.view(third.id, third_token)).position == 1


async def test_leaving_the_waiting_list_moves_the_line_up(flows):
    seated, second, third = [await register(flows, n) for n in (1, 2, 3)]
    third_token = token_in(flows, "registration.waitlisted.v1", third.id)
    assert (await flows.view(third.id, third_token)).position == 2
    await flows.cancel(second.id, token_in(flows, "registration.waitlisted.v1", second.id))
    [left] = flows.outbox.messages("registration.cancelled.v2")
    assert (left["data"]["reason"], left["data"]["previous_status"]) == ("left_waiting_list", "waitlisted")
    assert (await flows.view(third.id, third_token)).position == 1
    assert (await flows.event(SLUG)).seats == [seated.id]


async def test_an_admins_cancellation_names_the_admin(flows):
    first, second = await register(flows, 1), await register(flows, 2)
    await flows.cancel(second.id, actor=ADMIN)
    stored = await flows.store.registration(second.id)
    assert (stored.status, stored.cancelled_by) == (Status.cancelled, ADMIN)
    [cancelled] = flows.outbox.messages("registration.cancelled.v2")
    assert (cancelled["data"]["reason"], cancelled["authid"]) == ("admin", ADMIN)
    assert (await flows.event(SLUG)).seats == [first.id]


async def test_a_repeated_cancel_changes_nothing(flows):
    me = await register(flows, 1)
    token = token_in(flows, "registration.confirmed.v1", me.id)
    await flows.cancel(me.id, token)
    await flows.cancel(me.id, token)
    assert len(flows.outbox.messages("registration.cancelled.v2")) == 1


async def test_a_checked_in_participant_cannot_cancel(flows):
    me = await register(flows, 1)
    await flows.check_in(me.id, ADMIN)
    with pytest.raises(Refused, match="kan ikkje avmeldast"):
        await flows.cancel(me.id, token_in(flows, "registration.confirmed.v1", me.id))
    assert await status_of(flows, me.id) == Status.checked_in


async def test_a_wrong_link_finds_nothing_and_changes_nothing(flows):
    me = await register(flows, 1)
    for attempt in (flows.view(me.id, "feil"), flows.cancel(me.id, "feil"), flows.erase(me.id, "request", "feil"),
                    flows.view("0" * 32, "feil")):
        with pytest.raises(Refused) as nothing:
            await attempt
        assert nothing.value.status == 404
    assert await status_of(flows, me.id) == Status.confirmed


async def test_no_one_is_promoted_once_the_møteplass_has_started(flows, clock):
    first, second = await register(flows, 1), await register(flows, 2)
    clock(timedelta(days=30, hours=1))
    await flows.cancel(first.id, actor=ADMIN)
    assert await status_of(flows, second.id) == Status.waitlisted
    assert not flows.outbox.messages("registration.promoted.v1")


# ---- a participant's own registration ----------------------------------------------------------------------------

async def test_answers_may_change_until_cancelled(flows):
    await flows.create_event(event_in("sporsmal", questions=[
        {"id": "tema", "text": "Tema", "kind": "text", "required": True}]))
    me = await register(flows, 1, "sporsmal", answers={"tema": "Tenestedesign"})
    token = token_in(flows, "registration.confirmed.v1", me.id)
    assert (await flows.change_answers(me.id, token, {"tema": "Open Space"})).answers == {"tema": "Open Space"}
    with pytest.raises(Refused) as invalid:
        await flows.change_answers(me.id, token, {"tema": ""})
    assert invalid.value.status == 422
    await flows.cancel(me.id, token)
    with pytest.raises(Refused) as cancelled:
        await flows.change_answers(me.id, token, {"tema": "Anna"})
    assert cancelled.value.status == 409
    assert (await flows.store.registration(me.id)).answers == {"tema": "Open Space"}


async def test_own_data_holds_what_is_stored_about_the_person_and_no_secrets(flows):
    me = await register(flows, 1, phone="+47 900 00 000", **BAERUM)
    data = await flows.own_data(me.id, token_in(flows, "registration.confirmed.v1", me.id))
    assert (data["registration_id"], data["event"], data["email"], data["phone"], data["municipality"]) == (
        me.id, {"slug": SLUG, "title": "Innovasjonsjam"}, "deltakar1@example.no", "+47 900 00 000",
        {"number": "3201", "name": "Bærum"})
    assert data["consent"]["privacy_version"] == "2026-01" and "token_hashes" not in data


# ---- admin lists, the door ---------------------------------------------------------------------------------------

async def test_the_admin_list_pages_in_arrival_order_and_filters(flows):
    # Ids begin with the millisecond they were made in: these three may share one, and then sort by the rest.
    registered = sorted([await register(flows, n, **(BAERUM if n % 2 else ASKER)) for n in (1, 2, 3)],
                        key=lambda r: r.id)
    first_page, cursor = await flows.registrations_of(SLUG, RegistrationFilter(limit=2))
    assert [r.id for r in first_page] == [r.id for r in registered[:2]]
    rest, end = await flows.registrations_of(SLUG, RegistrationFilter(limit=2, cursor=cursor))
    assert ([r.id for r in rest], end) == ([registered[2].id], None)
    waiting, _ = await flows.registrations_of(SLUG, RegistrationFilter(status="waitlisted"))
    event = await flows.event(SLUG)
    assert [(r.id, r.position) for r in waiting] == sorted(
        (rid, position) for position, rid in enumerate(event.waitlist, 1))
    assert [r.status for r in first_page + rest].count(Status.waitlisted) == 2
    baerum, _ = await flows.registrations_of(SLUG, RegistrationFilter(municipality="3201"))
    assert sorted(r.name for r in baerum) == ["Deltakar 1", "Deltakar 3"]


async def test_the_csv_lists_who_comes_and_who_waits_but_not_who_left(flows):
    await flows.update_event(SLUG, EventUpdate(capacity=2), ADMIN)
    stays, leaves, erased, waits = [await register(flows, n) for n in (1, 2, 3, 4)]
    await flows.cancel(leaves.id, actor=ADMIN)
    await flows.erase(erased.id, "request", actor=ADMIN)
    text = await flows.export(SLUG)
    assert "deltakar1@example.no" in text and "deltakar4@example.no" in text
    assert "deltakar2@example.no" not in text and "Deltakar 3" not in text and "erased" not in text


async def test_the_door_finds_seat_holders_by_name_and_counts(flows):
    await flows.update_event(SLUG, EventUpdate(capacity=2), ADMIN)
    kari = await flows.register(SLUG, person(1, name="Kari Nordmann"))
    ola = await flows.register(SLUG, person(2, name="Ola Berg"))
    await flows.register(SLUG, person(3, name="Kari Venteliste"))
    await flows.check_in(ola.id, ADMIN)
    assert [p.id for p in await flows.participants(SLUG)] == [kari.id, ola.id]
    assert [p.id for p in await flows.participants(SLUG, "kar")] == [kari.id]
    assert await flows.counts(SLUG) == {"confirmed": 1, "checked_in": 1, "waitlisted": 1}


async def test_door_staff_check_in_a_seat_holder_once(flows):
    me, waiting = await register(flows, 1), await register(flows, 2)
    checked = await flows.check_in(me.id, ADMIN)
    assert (checked.status, checked.checked_in_by) == (Status.checked_in, ADMIN)
    assert await flows.check_in(me.id, "another@baerum.kommune.no") == checked  # again: nothing more
    [message] = flows.outbox.messages("registration.checked_in.v1")
    assert (message["data"]["registration_id"], message["authid"]) == (me.id, ADMIN)
    with pytest.raises(Refused, match="stadfesta plass"):
        await flows.check_in(waiting.id, ADMIN)
    with pytest.raises(Refused) as unknown:
        await flows.check_in("0" * 32, ADMIN)
    assert unknown.value.status == 404


# ---- erasure -----------------------------------------------------------------------------------------------------

async def test_erasure_removes_the_person_tells_the_others_and_passes_the_seat_on(flows):
    me, waiting = await register(flows, 1, **BAERUM), await register(flows, 2)
    token = token_in(flows, "registration.confirmed.v1", me.id)
    await flows.erase(me.id, "request", token=token)
    erased = await flows.store.registration(me.id)
    assert erased.status == Status.erased
    assert (erased.name, erased.phone, erased.organisation, erased.municipality, erased.answers,
            erased.token_hashes) == (None, None, None, None, {}, [])
    assert "deltakar1" not in erased.email
    [message] = flows.outbox.messages("registration.erased.v1")
    assert (message["data"]["email"], message["data"]["reason"], message["authid"]) == (
        "deltakar1@example.no", "request", None)
    assert await status_of(flows, waiting.id) == Status.confirmed
    with pytest.raises(Refused):  # the link went with the data
        await flows.view(me.id, token)
    listed, _ = await flows.registrations_of(SLUG, RegistrationFilter(status="erased"))
    assert [r.id for r in listed] == [me.id]


async def test_an_admins_erasure_names_the_admin_and_is_done_once(flows):
    me = await register(flows, 1)
    await flows.erase(me.id, "request", actor=ADMIN)
    await flows.erase(me.id, "request", actor=ADMIN)
    assert (await flows.store.registration(me.id)).erased_by == ADMIN
    [message] = flows.outbox.messages("registration.erased.v1")
    assert message["authid"] == ADMIN


async def test_after_retention_everyone_is_erased_and_the_counts_stay(flows, clock):
    await register(flows, 1)
    await register(flows, 2)
    await flows.purge_past_events()  # retention not over: nothing happens
    assert not flows.outbox.messages("registration.erased.v1")
    clock(timedelta(days=30 + 31))
    await flows.purge_past_events()
    erased = flows.outbox.messages("registration.erased.v1")
    assert sorted((m["data"]["email"], m["data"]["reason"]) for m in erased) == [
        ("deltakar1@example.no", "retention"), ("deltakar2@example.no", "retention")]
    assert {r.status for r in await flows.store.registrations_of(SLUG)} == {Status.erased}
    assert await flows.counts(SLUG) == {"confirmed": 1, "waitlisted": 1}
    assert (await flows.event(SLUG)).personal_data == "purged"
    await flows.purge_past_events()  # done: nothing more
    assert len(flows.outbox.messages("registration.erased.v1")) == 2


# ---- the reconciler finishes what a crash left -------------------------------------------------------------------

async def test_a_seat_taken_by_a_request_that_died_is_given_back(flows, clock):
    crash(flows.store, "insert_registrations")
    with pytest.raises(RuntimeError):
        await register(flows, 1)
    assert domain.seats_left(await flows.event(SLUG)) == 0
    await flows.reconcile(timedelta(0))  # the request may still be on its way
    assert domain.seats_left(await flows.event(SLUG)) == 0
    clock(timedelta(minutes=6))  # orphan_after: no request is on its way any more
    await flows.reconcile(timedelta(0))
    assert (await flows.event(SLUG)).seats == []
    assert (await register(flows, 1)).status == Status.confirmed


async def test_a_confirmation_cut_short_is_finished(flows):
    await flows.create_event(event_in("stadfest", require_email_confirmation=True))
    pending = await register(flows, 1, "stadfest")
    token = query_of(messages(flows, "registration.pending.v1", pending.id)[0]["data"]["confirm_url"], "token")
    crash(flows.store, "transition")  # the seat is taken, the registration never learns it
    with pytest.raises(RuntimeError):
        await flows.confirm(pending.id, token)
    assert await status_of(flows, pending.id) == Status.allocating
    await flows.reconcile(timedelta(0))
    assert await status_of(flows, pending.id) == Status.confirmed
    assert (await flows.event("stadfest")).seats == [pending.id]
    assert len(messages(flows, "registration.confirmed.v1", pending.id)) == 1


async def test_a_cancellation_cut_short_is_finished_and_the_seat_passed_on(flows):
    holder, waiting = await register(flows, 1), await register(flows, 2)
    crash(flows.store, "release")  # marked cancelling, the seat never given back
    with pytest.raises(RuntimeError):
        await flows.cancel(holder.id, token_in(flows, "registration.confirmed.v1", holder.id))
    assert await status_of(flows, holder.id) == Status.cancelling
    await flows.reconcile(timedelta(0))
    assert [await status_of(flows, r.id) for r in (holder, waiting)] == [Status.cancelled, Status.confirmed]
    [cancelled] = flows.outbox.messages("registration.cancelled.v2")
    assert (cancelled["data"]["registration_id"], cancelled["data"]["previous_status"]) == (holder.id, "confirmed")


async def test_an_erasure_cut_short_is_finished(flows):
    me = await register(flows, 1)
    crash(flows.store, "release")
    with pytest.raises(RuntimeError):
        await flows.erase(me.id, "request", actor=ADMIN)
    assert await status_of(flows, me.id) == Status.erasing
    await flows.reconcile(timedelta(0))
    assert await status_of(flows, me.id) == Status.erased
    [message] = flows.outbox.messages("registration.erased.v1")
    assert (message["data"]["email"], message["authid"]) == ("deltakar1@example.no", ADMIN)


async def test_a_promotion_cut_short_is_finished(flows):
    holder, waiting = await register(flows, 1), await register(flows, 2)
    crash(flows.store, "transition", when=lambda rid, status, *_: status == Status.confirmed)
    with pytest.raises(RuntimeError):
        await flows.cancel(holder.id, actor=ADMIN)
    assert (await flows.event(SLUG)).seats == [waiting.id]  # the seat moved, the registration never learnt it
    assert await status_of(flows, waiting.id) == Status.waitlisted
    await flows.reconcile(timedelta(0))
    assert await status_of(flows, waiting.id) == Status.confirmed
    assert [m["data"]["registration_id"] for m in flows.outbox.messages("registration.promoted.v1")] == [waiting.id]


async def test_a_møteplass_cancelled_midway_has_its_registrations_cancelled(flows):
    holder, waiting = await register(flows, 1), await register(flows, 2)
    crash(flows.store, "mark_all_cancelling")  # the møteplass is cancelled, its registrations never marked
    with pytest.raises(RuntimeError):
        await flows.cancel_event(SLUG, ADMIN)
    assert await status_of(flows, holder.id) == Status.confirmed
    await flows.reconcile(timedelta(0))  # marks them cancelling …
    await flows.reconcile(timedelta(0))  # … and the next pass, once the grace is over, cancels them
    assert [await status_of(flows, r.id) for r in (holder, waiting)] == [Status.cancelled, Status.cancelled]
    assert {m["data"]["reason"] for m in flows.outbox.messages("registration.cancelled.v2")} == {"event_cancelled"}
    assert not flows.outbox.messages("registration.promoted.v1")


async def test_a_guest_code_claimed_by_a_request_that_died_is_given_back(flows, baerum_host, clock):
    await invite(flows, baerum_host, "gjest@nettverk.example.no")
    code = invite_code(flows, baerum_host)
    crash(flows.store, "insert_registrations")  # the code is claimed, the registration never stored
    with pytest.raises(RuntimeError):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
    with pytest.raises(Refused, match="alt brukt"):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
    clock(timedelta(minutes=6))
    await flows.reconcile(timedelta(0))
    guest = await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
    # A claim whose registration was stored is settled, not given back.
    clock(timedelta(minutes=12))
    await flows.reconcile(timedelta(0))
    await flows.cancel(guest.id, token_in(flows, "registration.confirmed.v1", guest.id))
    with pytest.raises(Refused, match="alt brukt"):
        await register(flows, 9, email="gjest@nettverk.example.no", invite_code=code)
