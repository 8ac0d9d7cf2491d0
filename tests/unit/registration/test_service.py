"""Use cases of services/registration/service.py run over the in-memory store and outbox (fakes.py): no MongoDB,
no RabbitMQ, milliseconds each. What they check: the places taken, the statuses stored and the messages the use
case publishes. The batching (GroupCommit) runs as in production; the store's own semantics are the fake's."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from services.registration import domain
from services.registration.domain import Refused, Registration
from services.registration.models import EventIn, RegistrationIn
from services.registration.service import Registrations
from shared.settings import Settings

from .fakes import FakeOutbox, FakeStore

SLUG = "innovasjonsjam"


@pytest.fixture
async def flows() -> Registrations:
    flows = Registrations(FakeStore(), FakeOutbox(), Settings(jwt_secret="unit-test-secret-long-enough-for-hs256"),
                          "/moteplass/registration", confirmation_valid=timedelta(days=1),
                          orphan_after=timedelta(minutes=5))
    starts = datetime.now(UTC) + timedelta(days=30)
    await flows.create_event(EventIn(slug=SLUG, title="Innovasjonsjam", starts_at=starts,
                                     ends_at=starts + timedelta(hours=6), venue="Bærum rådhus", capacity=1))
    return flows


async def register(flows: Registrations, n: int) -> Registration:
    registration = await flows.register(SLUG, RegistrationIn(
        name=f"Deltakar {n}", email=f"deltakar{n}@baerum.kommune.no", organisation="Bærum kommune", consent=True))
    await flows.published()  # its message leaves off the request's path
    return registration


def token_in(flows: Registrations, routing_key: str, rid: str) -> str:
    [message] = [m for m in flows.outbox.messages(routing_key) if m["data"]["registration_id"] == rid]
    return parse_qs(urlparse(message["data"]["manage_url"]).query)["token"][0]


async def test_register_takes_a_free_seat(flows):
    me = await register(flows, 1)
    assert me.status == "confirmed"
    assert (await flows.event(SLUG)).seats == [me.id]
    [message] = flows.outbox.messages("registration.confirmed.v1")
    assert message["data"]["registration_id"] == me.id and message["subject"] == me.id


async def test_a_full_event_puts_the_next_on_the_waiting_list(flows):
    await register(flows, 1)
    second = await register(flows, 2)
    assert (second.status, second.position) == ("waitlisted", 1)
    event = await flows.event(SLUG)
    assert (domain.seats_left(event), event.waitlist) == (0, [second.id])
    assert [m["data"]["position"] for m in flows.outbox.messages("registration.waitlisted.v1")] == [1]


async def test_a_cancelled_seat_goes_to_the_first_in_line(flows):
    first, second, third = [await register(flows, n) for n in (1, 2, 3)]
    await flows.cancel(first.id, token_in(flows, "registration.confirmed.v1", first.id))
    assert (await flows.store.registration(first.id)).status == "cancelled"
    assert (await flows.store.registration(second.id)).status == "confirmed"
    event = await flows.event(SLUG)
    assert (event.seats, event.waitlist) == ([second.id], [third.id])
    [cancelled] = flows.outbox.messages("registration.cancelled.v2")
    assert (cancelled["data"]["reason"], cancelled["data"]["previous_status"]) == ("participant", "confirmed")
    assert [m["data"]["registration_id"] for m in flows.outbox.messages("registration.promoted.v1")] == [second.id]


async def test_the_same_address_twice_is_refused_and_holds_nothing(flows):
    await register(flows, 1)
    with pytest.raises(Refused, match="alt påmeld"):
        await register(flows, 1)
    assert (await flows.event(SLUG)).waitlist == []


async def test_an_admins_cancellation_names_the_admin(flows):
    first, second = await register(flows, 1), await register(flows, 2)
    await flows.cancel(second.id, actor="kari@baerum.kommune.no")
    stored = await flows.store.registration(second.id)
    assert (stored.status, stored.cancelled_by) == ("cancelled", "kari@baerum.kommune.no")
    [cancelled] = flows.outbox.messages("registration.cancelled.v2")
    assert (cancelled["data"]["reason"], cancelled["authid"]) == ("admin", "kari@baerum.kommune.no")
    assert (await flows.event(SLUG)).seats == [first.id]
