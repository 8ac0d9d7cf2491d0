import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.messages import UnknownMessageType, catalogue, make_event, parse_event
from shared.messages.envelope import also_published
from shared.messages.notifications import NotificationSent
from shared.messages.registration import EventInfo, RegistrationWaitlisted

EVENT = EventInfo(slug="innovasjonsjam-baerum", title="Innovasjonsjam", venue="Bærum rådhus",
                  starts_at=datetime(2026, 11, 30, 9, tzinfo=UTC), ends_at=datetime(2026, 11, 30, 15, tzinfo=UTC))


def waitlisted() -> RegistrationWaitlisted:
    return RegistrationWaitlisted(event=EVENT, registration_id="r1", name="Kari", email="kari@baerum.kommune.no",
                                  language="nn", status="waitlisted", position=3)


def test_envelope_is_cloudevents_structured_json_with_versioned_type_and_routing_key():
    event = make_event(waitlisted(), source="/moteplass/registration", subject="r1", correlation_id="req-1")
    body = event.model_dump(mode="json")
    assert body["specversion"] == "1.0"
    assert body["type"] == "no.moteplass.registration.waitlisted.v1"
    assert body["datacontenttype"] == "application/json"
    assert body["correlationid"] == "req-1"
    assert event.routing_key == "registration.waitlisted.v1"
    assert body["time"].endswith("Z")


def test_parse_event_gives_back_the_typed_payload():
    event = make_event(waitlisted(), source="/moteplass/registration")
    parsed = parse_event(event.model_dump_json())
    assert isinstance(parsed.data, RegistrationWaitlisted)
    assert parsed.data.position == 3
    assert parsed.id == event.id


def test_parse_event_refuses_unknown_types_and_bad_payloads():
    with pytest.raises(UnknownMessageType):
        parse_event('{"specversion": "1.0", "type": "no.moteplass.nothing.v1", "data": {}}')
    event = make_event(waitlisted(), source="/x").model_dump(mode="json")
    event["data"]["position"] = 0
    with pytest.raises(ValueError):
        parse_event(json.dumps(event))


def test_catalogue_names_every_type_under_the_prefix():
    types = catalogue()
    assert "no.moteplass.registration.confirmed.v1" in types
    assert all(t.startswith("no.moteplass.") and t.rsplit(".", 1)[1].startswith("v") for t in types)


@pytest.mark.parametrize(("kind", "today", "beside"), [
    ("confirmed", NotificationSent.replaces_until, ["no.moteplass.notification.sent.v1"]),  # its last day
    ("confirmed", NotificationSent.replaces_until + timedelta(days=1), []),  # the overlap is over
    ("staff_sign_in", NotificationSent.replaces_until, [])])
def test_the_replaced_version_goes_out_beside_for_the_values_it_knows_only_during_the_overlap(kind, today, beside):
    sent = make_event(NotificationSent(notification_id="n1", message_id="m1", kind=kind, recipient="kari@example.no",
                                       attempts=1, sent_at=datetime(2026, 11, 30, 9, tzinfo=UTC)), source="/x")
    older = also_published(sent, today)
    assert [event.type for event in older] == beside
    assert all(event.data.model_dump(mode="json") == sent.data.model_dump(mode="json") and event.id != sent.id
               for event in older)
