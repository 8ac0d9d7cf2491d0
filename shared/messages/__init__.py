"""The public message contract: CloudEvents envelopes with typed payloads, one module per publishing service."""

import json
from functools import cache

from . import comments, notifications, registration
from .common import Language
from .envelope import TYPE_PREFIX, CloudEvent, Payload, make_event, personal, routing_key_of, type_of


@cache
def catalogue() -> dict[str, type[Payload]]:
    """Every concrete message type, by CloudEvents type (all the modules defining them are imported above)."""
    found: dict[str, type[Payload]] = {}
    stack = list(Payload.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "event_type" in cls.__dict__:
            found[type_of(cls)] = cls
    return dict(sorted(found.items()))


class UnknownMessageType(ValueError):
    pass


def parse_event(body: bytes | str) -> CloudEvent:
    """Parse a structured CloudEvent into the envelope typed by its `type` attribute."""
    raw = json.loads(body)
    payload_cls = catalogue().get(raw.get("type", "") if isinstance(raw, dict) else "")
    if payload_cls is None:
        raise UnknownMessageType(f"unknown message type {raw.get('type') if isinstance(raw, dict) else raw!r}")
    return CloudEvent[payload_cls].model_validate(raw)


__all__ = [
    "CloudEvent", "Language", "Payload", "TYPE_PREFIX", "catalogue", "comments", "make_event", "notifications",
    "UnknownMessageType", "parse_event", "personal", "registration", "routing_key_of", "type_of",
]
