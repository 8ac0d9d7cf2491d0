"""The services the browser tests open pages of, started as in production (HTTP, bus, store, mail), and the
links a person finds in their mail."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp

from services.registration.app import create_app as create_registration
from services.registration.config import RegistrationConfig

LINK = re.compile(r"https?://[^\s<>\"')]+")


def registration_app(settings):
    # The tests open pages and post forms quickly from one address: no per-address limit in the way.
    return create_registration(settings, RegistrationConfig(posts_per_minute=100_000))


def address(who: str = "kari") -> str:
    return f"{who}-{uuid.uuid4().hex[:10]}@baerum.kommune.no"


def links(mail: dict) -> list[str]:
    """Every link in a mail's plain text and HTML, in order, each once."""
    return list(dict.fromkeys(LINK.findall(mail["Text"]) + LINK.findall(mail["HTML"].replace("&amp;", "&"))))


def link_to(mail: dict, part: str) -> str:
    """The one link in the mail that contains `part`."""
    found = {link for link in links(mail) if part in link}
    assert len(found) == 1, f"{len(found)} links with {part!r} in {links(mail)}"
    return found.pop()


async def create_event(http: aiohttp.ClientSession, admin_headers: dict, **changes) -> dict:
    starts = datetime.now(UTC) + timedelta(days=30)
    body = {"slug": f"innovasjonsjam-{uuid.uuid4().hex[:8]}", "title": "Innovasjonsjam i Bærum",
            "description": "Open Space om innovasjon i kommunane.", "kind": "jam",
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=6)).isoformat(),
            "venue": "Bærum kulturhus", "address": "Sandvika", "capacity": 1, "language": "nn",
            "questions": [{"id": "diett", "text": "Treng du spesialkost?", "kind": "single_choice",
                           "options": ["Nei", "Vegetar", "Glutenfri"]}], **changes}
    async with http.post("/events", json=body, headers=admin_headers) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


def participant(email: str, n: int = 1, **changes) -> dict:
    return {"name": f"Kari Nordmann {n}", "email": email, "organisation": "Bærum kommune",
            "organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"},
            "answers": {"diett": "Nei"}, "consent": True, **changes}


async def register(http: aiohttp.ClientSession, slug: str, body: dict) -> dict:
    async with http.post(f"/events/{slug}/registrations", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


def urls_in(value) -> list[str]:
    """Every URL in a message's fields, however deep."""
    if isinstance(value, dict):
        return [url for item in value.values() for url in urls_in(item)]
    if isinstance(value, list):
        return [url for item in value for url in urls_in(item)]
    return [value] if isinstance(value, str) and value.startswith(("http://", "https://")) else []
