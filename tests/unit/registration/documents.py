"""A møteplass and a registration as the rules see them (domain.Event, domain.Registration), for unit tests: plain
values, any field changed by keyword."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.registration.domain import Event, EventStatus, Registration, Status
from shared.messages import Language

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def event(**changes) -> Event:
    return replace(Event(
        slug="jam", title="Jam", description="", kind="jam", organisers=[], status=EventStatus.published,
        starts_at=NOW + timedelta(days=7), ends_at=NOW + timedelta(days=7, hours=6), venue="Bærum", capacity=2,
        language=Language.nn, timezone="Europe/Oslo", waitlist_enabled=True, require_email_confirmation=False,
        questions=[], retention_days=30), **changes)


def registration(**changes) -> Registration:
    return replace(Registration(
        id="r1", event_slug="jam", status=Status.confirmed, email="kari@baerum.no", language=Language.nn,
        created_at=NOW, name="Kari", organisation="Bærum kommune",
        municipality={"number": "3201", "name": "Bærum"}), **changes)
