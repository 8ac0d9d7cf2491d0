"""The compatibility gate of the README's evolution policy: within a major version the contract only grows.

Every schema ever published is kept (docs/schemas/published/<routing key>/). For each, messages are generated from
it and from today's schema of the same version (hypothesis-jsonschema) and cross-validated: today's schema must
accept every message valid under a published one (old producers, new readers), and a published schema must accept
every message today's producers may send (new producers, old readers — the break a v1 subscriber hit when
registration.cancelled.v1 gained a field)."""

import copy
import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from moteplass.contract import PUBLISHED_DIR, message_types

ROOT = Path(__file__).resolve().parents[2]
CURRENT = {message.routing_key: message.schema for message in message_types()}
PUBLISHED = sorted(path for path in (ROOT / PUBLISHED_DIR).glob("*/*.json"))
# Those that differ from today's schema (today's own snapshot is trivially compatible with itself).
EARLIER = [path for path in PUBLISHED if json.loads(path.read_text(encoding="utf-8")) != CURRENT.get(path.parent.name)]
FORMATS = Draft202012Validator.FORMAT_CHECKER
# Tightenings allowed within a version, each a statement of what every producer always did, now written down.
# They are copied from today's schema into a published one before messages are generated from it.
CLARIFICATIONS = {
    "minLength": "CloudEvent ids were always UUIDs; the schema now says an id is never empty",
    "format": "URLs were always absolute links and addresses always valid emails; the schema now says so",
}
EXAMPLES = 10


def closed(node):
    """The schema as a producer writes it: no fields beyond the declared ones, enumerations by their known values
    (an open schema would let the generator invent fields that a later version may well define differently)."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    # Without its $id: hypothesis-jsonschema would resolve the local $refs against the urn and give up.
    node = {key: closed(value) for key, value in node.items() if key != "$id"}
    if node.get("type") == "object" and "properties" in node:
        node["additionalProperties"] = False
    if "anyOf" in node and any("enum" in branch for branch in node["anyOf"]):
        node["anyOf"] = [branch for branch in node["anyOf"] if "enum" in branch or branch.get("type") == "null"]
    return node


def inlined(schema: dict) -> dict:
    """The schema with each local $ref replaced by the definition it names: a published schema and today's are
    compared where a definition is used, whatever its name (a v1 model is renamed when its v2 takes the name)."""
    definitions = schema.get("$defs", {})

    def resolve(node):
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return resolve(definitions[node["$ref"].removeprefix("#/$defs/")])
        return {key: resolve(value) for key, value in node.items() if key != "$defs"}

    return resolve(schema)


def clarified(published, today):
    """The published schema with today's clarifying keywords (CLARIFICATIONS) where both have the same node. Nothing
    else is taken from today's: an enumeration published closed stays closed (a value added to it is a new major
    version, as notification.*.v2 for the kinds of mail added since v1)."""
    if isinstance(published, dict) and isinstance(today, dict):
        merged = {key: clarified(value, today.get(key)) for key, value in published.items()}
        merged |= {key: today[key] for key in CLARIFICATIONS if key in today and key not in merged}
        return merged
    if isinstance(published, list) and isinstance(today, list) and len(published) == len(today):
        return [clarified(a, b) for a, b in zip(published, today)]
    return published


def validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMATS)


@cache
def published(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def key_of(path: Path) -> str:
    return path.parent.name


def test_every_current_message_type_was_published():
    assert set(CURRENT) <= {key_of(path) for path in PUBLISHED}, "run `make schemas` (it keeps the published ones)"


def test_no_published_version_was_dropped():
    gone = {key_of(path) for path in PUBLISHED} - set(CURRENT)
    assert not gone, f"message types once published must stay (deprecated, with an overlap): {sorted(gone)}"


def check(generate_from: dict, must_accept: dict, why: str):
    accept = validator(must_accept)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(from_schema(generate_from))
    def run(message):
        errors = [error.message for error in accept.iter_errors(message)]
        assert not errors, f"{why}: {errors} for {json.dumps(message)[:600]}"

    run()


@pytest.mark.parametrize("path", EARLIER, ids=lambda path: f"{key_of(path)}/{path.stem}")
def test_old_producers_new_readers(path):
    """Today's schema accepts every message a published one allows."""
    today = inlined(CURRENT[key_of(path)])
    check(closed(clarified(inlined(published(path)), today)), today, "today's schema rejects a published message")


@pytest.mark.parametrize("path", EARLIER, ids=lambda path: f"{key_of(path)}/{path.stem}")
def test_new_producers_old_readers(path):
    """A published schema accepts every message today's producers may send under the same routing key."""
    today = inlined(CURRENT[key_of(path)])
    check(closed(today), clarified(inlined(published(path)), today), "a published schema rejects today's message")


def test_the_gate_catches_a_field_added_to_a_closed_version():
    # registration.cancelled.v1 as first published (no previous_status, closed) against the v1 that gained it.
    first = published(ROOT / PUBLISHED_DIR / "registration.cancelled.v1" / "ec9f66b3dfe8.json")
    grown = copy.deepcopy(first)
    grown["$defs"]["RegistrationCancelled"]["properties"]["previous_status"] = {"type": "string"}
    grown["$defs"]["RegistrationCancelled"]["required"] = [
        *grown["$defs"]["RegistrationCancelled"].get("required", []), "previous_status"]
    with pytest.raises(AssertionError, match="rejects today's message"):
        check(closed(grown), first, "a published schema rejects today's message")


def test_the_gate_catches_a_narrowed_field():
    today = CURRENT["registration.waitlisted.v1"]
    narrowed = copy.deepcopy(today)
    narrowed["$defs"]["RegistrationWaitlisted"]["properties"]["position"]["minimum"] = 5
    with pytest.raises(AssertionError, match="rejects a published message"):
        check(closed(today), narrowed, "today's schema rejects a published message")


def test_the_gate_catches_a_value_added_to_a_closed_enumeration():
    # notification.sent.v1 as first published (NotificationKind closed) against the v1 that gained staff_sign_in,
    # listed open as the policy writes enumerations: the break of issue #13. Its messages of the new kind:
    first = published(ROOT / PUBLISHED_DIR / "notification.sent.v1" / "bf6f38d17874.json")
    kinds = first["$defs"]["NotificationKind"]["enum"]
    grown = copy.deepcopy(first)
    grown["$defs"]["NotificationKind"] = {"anyOf": [{"enum": [*kinds, "staff_sign_in"], "type": "string"},
                                                    {"type": "string"}]}
    new_kind = closed(grown)
    new_kind["$defs"]["NotificationKind"] = {"const": "staff_sign_in"}
    with pytest.raises(AssertionError, match="rejects today's message"):
        check(new_kind, clarified(first, grown), "a published schema rejects today's message")
