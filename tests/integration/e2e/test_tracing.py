"""One trace from a registration POST to the mail accepted by SMTP, across two services: the request's W3C trace
context travels in the event (CloudEvents distributed-tracing extension) through the outbox and the bus."""

import asyncio
import time

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from shared import tracing
from shared.runtime import RUNTIME

from .test_registration_to_mail import address, create_event, participant

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
async def traced(start_service, monkeypatch):
    """Registration and notifications exporting their spans to one in-memory exporter; returns the exporter, the
    runtimes (to flush) and an HTTP session on registration."""
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "span_exporter", lambda: exporter)
    runtimes = []

    def keeping(create_app):
        def create(settings):
            app = create_app(settings)
            runtimes.append(app[RUNTIME])
            return app
        return create

    await start_service(keeping(notifications_app), "notifications")
    base = await start_service(keeping(registration_app), "registration")
    async with aiohttp.ClientSession(base) as http:
        yield exporter, runtimes, http


async def spans_until(exporter, runtimes, done, timeout_s: float = 10):
    deadline = time.monotonic() + timeout_s
    while True:
        for runtime in runtimes:
            await asyncio.to_thread(runtime.tracer_provider.force_flush)
        spans = exporter.get_finished_spans()
        if done(spans) or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.05)


async def test_one_trace_runs_from_the_registration_post_to_the_mail_accepted(traced, admin_headers, mailbox):
    exporter, runtimes, http = traced
    slug = await create_event(http, admin_headers, capacity=5)
    email = address()
    resp = await http.post(f"/events/{slug}/registrations", json=participant(email),
                           headers={"traceparent": TRACEPARENT})
    assert resp.status == 201, await resp.text()
    await mailbox.wait_for(email)

    def in_trace(spans):
        return [s for s in spans if format(s.context.trace_id, "032x") == CALLER_TRACE]

    def complete(spans):
        return {s.name for s in in_trace(spans) if s.name == "smtp sendmail"}

    spans = in_trace(await spans_until(exporter, runtimes, complete))
    by_name = {s.name: s for s in spans}
    server = by_name["POST /events/{slug}/registrations"]
    assert server.kind == SpanKind.SERVER and server.parent.span_id == 0x00f067aa0ba902b7  # the caller's span
    assert server.resource.attributes["service.name"] == "registration"
    publish = by_name["publish registration.confirmed.v1"]
    assert publish.kind == SpanKind.PRODUCER and publish.parent.span_id == server.context.span_id
    consume = by_name["process registration.confirmed.v1"]
    assert consume.kind == SpanKind.CONSUMER and consume.parent.span_id == server.context.span_id
    assert consume.resource.attributes["service.name"] == "notifications"
    smtp = by_name["smtp sendmail"]
    assert smtp.kind == SpanKind.CLIENT and smtp.resource.attributes["service.name"] == "notifications"
    assert _ancestors(smtp, spans) >= {consume.context.span_id, server.context.span_id}
    assert {s.resource.attributes["service.name"] for s in spans} == {"registration", "notifications"}


def _ancestors(span, spans) -> set[int]:
    by_id = {s.context.span_id: s for s in spans}
    found = set()
    while span.parent is not None and span.parent.span_id in by_id:
        found.add(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return found
