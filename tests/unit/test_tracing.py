"""Tracing is off unless the standard OTEL_* variables ask for it, and off it exports nothing and puts no trace
context into events (one that came in with a request is passed on unchanged)."""

import json

import pytest
from multidict import CIMultiDict
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.bus import trace_of
from shared.messages import make_event, parse_event
from shared.messages.registration import RegistrationErased

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VARIABLES = ["OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def event():
    return make_event(RegistrationErased(registration_id="r1", event_slug="jam", email="kari@example.no",
                                         reason="request"), source="/test")


def test_off_by_default():
    assert tracing.span_exporter() is None
    assert tracing.tracer_provider("registration") is None
    assert tracing.tracer_of(None) is tracing.OFF


@pytest.mark.parametrize("environment, exporter", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_EXPORTER": ""}, None),  # as compose and k8s wire it: off
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, OTLPSpanExporter),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, OTLPSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, OTLPSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "console"}, ConsoleSpanExporter),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
])
def test_the_standard_variables_choose_the_exporter(monkeypatch, environment, exporter):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    chosen = tracing.span_exporter()
    assert chosen is None if exporter is None else isinstance(chosen, exporter)


def test_an_exporter_this_service_does_not_have_is_refused(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        tracing.span_exporter()


def test_a_provider_names_the_service_unless_otel_service_name_does(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing.tracer_provider("notifications").resource.attributes["service.name"] == "notifications"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "varsel")
    assert tracing.tracer_provider("notifications").resource.attributes["service.name"] == "varsel"


def test_off_an_event_carries_no_trace_context():
    made = event()
    assert made.traceparent is None and trace_of(made) == {}
    with tracing.span(tracing.OFF, "work", SpanKind.INTERNAL):
        assert event().traceparent is None


def test_off_a_callers_trace_context_is_passed_on_unchanged_through_the_stored_message():
    headers = CIMultiDict({"Traceparent": TRACEPARENT})  # as a request's headers come, in the case the client sent
    with tracing.span(tracing.OFF, "POST /x", SpanKind.SERVER, headers):
        made = event()
    assert made.traceparent == TRACEPARENT
    received = parse_event(made.model_dump_json().encode())
    assert trace_of(received) == {"traceparent": TRACEPARENT}


def test_a_malformed_or_missing_traceparent_starts_no_trace():
    body = json.loads(event().model_dump_json())
    for value in ("not-a-traceparent", None):
        received = parse_event(json.dumps({**body, "traceparent": value}).encode())
        with tracing.span(tracing.OFF, "process", SpanKind.CONSUMER, trace_of(received)) as span:
            assert not span.get_span_context().is_valid
            assert event().traceparent is None
