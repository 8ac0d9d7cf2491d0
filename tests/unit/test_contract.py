"""The checked-in contract (docs/schemas, docs/asyncapi.yaml, the README's catalogue and configuration table) is
what the models and settings say it is."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml

from moteplass import contract
from shared.messages import make_event
from shared.messages.registration import EventInfo, RegistrationWaitlisted
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_contract_files_are_what_the_models_generate():
    assert contract.stale(ROOT) == [], "run `make schemas` and commit the result"


def test_stale_files_are_found_and_rewritten(tmp_path):
    (tmp_path / "README.md").write_text(f"# Møteplass\n{contract.CATALOGUE_BEGIN}\nold\n{contract.CATALOGUE_END}\n")
    assert set(contract.stale(tmp_path)) == set(contract.generate(tmp_path))
    contract.write(tmp_path)
    assert contract.stale(tmp_path) == []

    first = contract.message_types()[0].schema_path
    (tmp_path / first).write_text("{}")
    orphan = contract.SCHEMA_DIR / "registration.retired.v1.json"
    (tmp_path / orphan).write_text("{}")
    assert contract.stale(tmp_path) == [first, orphan]
    assert contract.write(tmp_path) == [first, orphan]
    assert contract.stale(tmp_path) == [] and not (tmp_path / orphan).exists()


def test_generation_is_deterministic():
    assert contract.generate(ROOT) == contract.generate(ROOT)


@pytest.mark.parametrize("message", contract.message_types(), ids=lambda m: m.routing_key)
def test_every_schema_is_a_valid_json_schema_for_its_type(message):
    schema = json.loads((ROOT / message.schema_path).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["type"]["const"] == message.cloudevent_type
    assert {"specversion", "id", "source", "type", "time", "data"} <= set(schema["required"])


def _waitlisted_event():
    starts = datetime(2026, 12, 1, 9, tzinfo=UTC)
    payload = RegistrationWaitlisted(
        event=EventInfo(slug="innovasjonsjam-baerum", title="Innovasjonsjam i Bærum", starts_at=starts,
                        ends_at=starts + timedelta(hours=6), venue="Bærum rådhus"),
        registration_id="r1", name="Kari Nordmann", email="kari@baerum.kommune.no", language="nn",
        status="waitlisted", position=3)
    return make_event(payload, source="/moteplass/registration", correlation_id="req-1")


def test_a_real_cloudevent_validates_against_its_schema():
    message = next(m for m in contract.message_types() if m.payload is RegistrationWaitlisted)
    validator = jsonschema.Draft202012Validator(message.schema, format_checker=jsonschema.FormatChecker())
    instance = json.loads(_waitlisted_event().model_dump_json())
    validator.validate(instance)

    for broken in ({**instance, "type": "no.moteplass.registration.confirmed.v1"},
                   {**instance, "data": {**instance["data"], "position": 0}},
                   {**instance, "data": {k: v for k, v in instance["data"].items() if k != "email"}}):
        assert not validator.is_valid(broken)


def test_personal_data_is_called_out():
    message = next(m for m in contract.message_types() if m.payload is RegistrationWaitlisted)
    assert {"data.name", "data.email", "data.manage_url"} <= set(message.personal_fields)
    assert "data.registration_id" not in message.personal_fields
    document = yaml.safe_load(contract.generate(ROOT)[contract.ASYNCAPI].split("\n", 1)[1])
    description = document["components"]["messages"]["registration-waitlisted-v1"]["description"]
    assert "`data.email`" in description and "Personal data" in description
    assert "data.email" in document["components"]["messages"]["registration-waitlisted-v1"]["x-personal-data"]


def test_asyncapi_describes_every_message_on_the_topic_exchange():
    document = yaml.safe_load((ROOT / contract.ASYNCAPI).read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["rabbitmq"]["protocol"] == "amqp"
    for message in contract.message_types():
        ident = message.routing_key.replace(".", "-")
        channel = document["channels"][ident]
        assert channel["address"] == message.routing_key
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "moteplass.events", "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}
        assert document["operations"][f"send-{ident}"]["action"] == "send"
        component = document["components"]["messages"][ident]
        assert component["summary"] == message.summary
        assert component["payload"]["schemaFormat"] == "application/schema+json;version=draft-2020-12"
        assert (ROOT / "docs" / component["payload"]["schema"]["$ref"]).resolve() == (
            ROOT / message.schema_path).resolve()
        assert message.service in component["description"]


def test_readme_lists_every_setting_with_its_environment_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == [], f"README.md's configuration table lacks {missing}"


@pytest.mark.parametrize(("pattern", "key", "matches"), [
    ("registration.#", "registration.confirmed.v1", True),
    ("registration.erased.#", "registration.erased.v1", True),
    ("registration.erased.#", "registration.confirmed.v1", False),
    ("registration.*", "registration.confirmed.v1", False),
    ("#", "comment.published.v1", True),
    ("*.published.v1", "event.published.v1", True),
])
def test_topic_patterns_match_as_rabbitmq_does(pattern, key, matches):
    assert contract.topic_matches(pattern, key) is matches


def test_asyncapi_names_who_consumes_each_message():
    operations = contract.asyncapi()["operations"]
    assert operations["receive-comments-registration-erased-v1"]["action"] == "receive"
    assert "receive-notifications-registration-confirmed-v1" in operations
    assert "receive-comments-registration-confirmed-v1" not in operations
    assert not any(name.startswith("receive-") and name.endswith("notification-sent-v1") for name in operations)
