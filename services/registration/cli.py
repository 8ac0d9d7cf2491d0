"""`moteplass demo`: the seed's two møteplassar with a few registrations, loaded through the service's own flows
(so every rule holds and every message is published, as if they had come in over HTTP)."""

import asyncio
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import click

from shared.runtime import Runtime
from shared.settings import Settings, get_settings

from .models import EventIn, RegistrationIn
from .app import SERVICE, build
from .config import RegistrationConfig
from .domain import Refused

OSLO = ZoneInfo("Europe/Oslo")


def _at(days_ahead: int, hour: int, minute: int = 0) -> datetime:
    day = datetime.now(OSLO).date() + timedelta(days=days_ahead)
    return datetime.combine(day, time(hour, minute), OSLO)


def seed_events() -> list[EventIn]:
    return [
        EventIn(
            slug="innovasjonsjam-baerum", kind="jam", capacity=90, guests_per_municipality=1,
            title="Innovasjonsjam: Korleis skape spenstige og dynamiske innovasjonskommunar?",
            description="Bærum kommune inviterer kommunar, statlege aktørar, private verksemder og sosiale "
                        "entreprenørar til Open Space. Kvar kommune kan ta med seg éin person frå sitt eige "
                        "nettverk utanfor kommunen.",
            organisers=["Bærum kommune", "Difi"], venue="Bærum rådhus",
            address="Sandvika",
            starts_at=_at(30, 9), ends_at=_at(30, 15, 30), registration_closes_at=_at(28, 23, 59),
            questions=[{"id": "problemstilling", "text": "Kva problemstilling vil du ta opp?", "kind": "text"}],
        ),
        EventIn(
            slug="innovasjonsworkshop-sarpsborg", kind="workshop", capacity=40,
            title="Innovasjonsworkshop for betre kommunalt innovasjonssamarbeid",
            description="Sarpsborg og Fredrikstad inviterer Østfold-kommunane, saman med Asker og Bærum som deler "
                        "erfaringar med innovasjonsstrategi, innovasjonskultur og samarbeid i nettverk.",
            organisers=["Sarpsborg kommune", "Fredrikstad kommune", "Difi"], venue="Sarpsborg rådhus",
            address="Sarpsborg", starts_at=_at(37, 10), ends_at=_at(37, 15),
            questions=[{"id": "diett", "text": "Treng du spesialkost?", "kind": "single_choice",
                        "options": ["nei", "vegetar", "vegan", "glutenfri"]}],
        ),
    ]


def _person(name: str, email: str, municipality: tuple[str, str] | None = None, organisation: str = "",
            organisation_type: str = "kommune", **answers) -> RegistrationIn:
    return RegistrationIn(
        name=name, email=email, organisation=organisation or f"{municipality[1]} kommune",
        organisation_type=organisation_type, consent=True, answers=answers,
        municipality={"number": municipality[0], "name": municipality[1]} if municipality else None)


BAERUM, ASKER = ("3201", "Bærum"), ("3203", "Asker")
SARPSBORG, FREDRIKSTAD = ("3105", "Sarpsborg"), ("3107", "Fredrikstad")

SEED_REGISTRATIONS = {
    "innovasjonsjam-baerum": [
        _person("Ingrid Haugland", "ingrid.haugland@baerum.example.no", BAERUM,
                problemstilling="Korleis får vi innbyggjarane med tidleg?"),
        _person("Olav Strand", "olav.strand@asker.example.no", ASKER,
                problemstilling="Tenestedesign i små einingar"),
        _person("Sigrid Nilsen", "sigrid.nilsen@sosialentreprenor.example.no", organisation="Ringar i vatnet SA",
                organisation_type="sosial entreprenør"),
    ],
    "innovasjonsworkshop-sarpsborg": [
        _person("Kari Berg", "kari.berg@sarpsborg.example.no", SARPSBORG, diett="nei"),
        _person("Nils Johansen", "nils.johansen@fredrikstad.example.no", FREDRIKSTAD, diett="vegetar"),
        _person("Marte Lie", "marte.lie@asker.example.no", ASKER, diett="nei"),
        _person("Per Dahl", "per.dahl@baerum.example.no", BAERUM, diett="glutenfri"),
    ],
}


async def load(settings: Settings, config: RegistrationConfig) -> list[str]:
    """Create what is missing; running it twice changes nothing."""
    runtime = Runtime(settings, SERVICE)
    await runtime.start()
    report = []
    try:
        registrations = await build(runtime, config)
        for event in seed_events():
            try:
                await registrations.create_event(event)
                report.append(f"møteplass {event.slug}: oppretta")
            except Refused:
                report.append(f"møteplass {event.slug}: finst frå før")
            for person in SEED_REGISTRATIONS[event.slug]:
                try:
                    done = await registrations.register(event.slug, person)
                    report.append(f"  {person.name}: {done.status}")
                except Refused as refused:
                    report.append(f"  {person.name}: {refused.message}")
    finally:
        await runtime.stop()
    return report


@click.command()
def demo() -> None:
    """Load the seed's two møteplassar (Innovasjonsjam in Bærum, the workshop in Sarpsborg) with registrations."""
    for line in asyncio.run(load(get_settings(), RegistrationConfig())):
        click.echo(line)

