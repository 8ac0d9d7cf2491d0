"""Tracing with OpenTelemetry, off unless asked for by the standard variables: OTEL_TRACES_EXPORTER=otlp (or
console), or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED
turns it off again. Off, every span is the API's no-op (a trace context that came in is still passed on).

One trace runs from an HTTP request through the events it causes to what their consumers do: the request's
W3C trace context goes into each event it makes as the CloudEvents distributed-tracing extension (`traceparent`,
`tracestate`), so it travels inside the stored outbox entry to whichever process publishes it, and every consumer
continues from it. Spans are made here by hand rather than by the aio-pika instrumentation, which carries the
context of the task that publishes (for the outbox relay: none) in AMQP headers."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# What a deployment wires (empty: tracing off); the SDK reads more OTEL_* variables (README: Tracing).
ENVIRONMENT = ("OTEL_EXPORTER_OTLP_ENDPOINT",)
W3C = TraceContextTextMapPropagator()
NAME = "moteplass"
OFF = trace.NoOpTracer()


def span_exporter() -> SpanExporter | None:
    """Where spans go, from the OTEL_* variables; None (tracing off) unless an exporter or endpoint is named."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = (os.environ.get("OTEL_TRACES_EXPORTER") or ("otlp" if endpoint else "none")).strip().lower()
    if exporter == "none":
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    if exporter != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter} is not supported here (otlp, console or none)")
    # Imported only when used: it brings in protobuf and requests. Reads its endpoint, headers etc. from OTEL_*.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def tracer_provider(service: str) -> TracerProvider | None:
    """A provider exporting the service's spans in batches, or None when tracing is off."""
    exporter = span_exporter()
    if exporter is None:
        return None
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, are read by Resource.create and win.
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer:
    return provider.get_tracer(NAME) if provider is not None else OFF


def current() -> dict[str, str]:
    """The current trace context as `traceparent` (and `tracestate`), empty when there is none."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    return carrier


def from_carrier(carrier: dict | None) -> context.Context:
    """The context a stored or received `traceparent`/`tracestate` names (an empty one if none or malformed)."""
    fields = {key.lower(): value for key, value in (carrier or {}).items() if isinstance(value, str)}  # header case
    return W3C.extract(fields, context=context.Context())


@contextmanager
def span(tracer: Tracer, name: str, kind: SpanKind, carrier=None, attributes: dict | None = None,
         **options) -> Iterator[trace.Span]:
    """A span, current while the block runs: a child of `carrier`'s context (a mapping holding `traceparent`) if
    given, else of the current span."""
    # A carrier is a request's headers (their names in any case) or a message's trace fields (lower case).
    if tracer is OFF and not (carrier and "traceparent" in carrier) \
            and not trace.get_current_span().get_span_context().is_valid:
        # Off, with no trace context to pass on: the no-op span would change nothing, and costs each request.
        yield trace.INVALID_SPAN
        return
    parent = from_carrier(carrier) if carrier is not None else None
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes,
                                      **options) as current_span:
        yield current_span
