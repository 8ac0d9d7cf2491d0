"""What the services really publish, seen as a subscriber sees it: through a registration's life (confirmed,
waiting list, promotion, cancellation, double opt-in, check-in, a changed and a cancelled møteplass, erasure) and a
comment's (submitted, published, rejected, deleted), with their mails. Every message is valid under its published
schema (formats checked), carries a correlation id, and no field that is not marked as personal data holds an email
address."""

import asyncio
import json
import re
import uuid
from pathlib import Path

import aio_pika
import aiohttp
from jsonschema import Draft202012Validator

from moteplass.contract import message_types
from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from shared.messages.envelope import overlapping
from shared.messages.notifications import NotificationSent
from shared.messages.registration import RegistrationCancelled
from tests.integration.comments.test_comments import comment, moderate, post
from tests.integration.e2e.test_registration_to_mail import address, create_event, participant

ROOT = Path(__file__).resolve().parents[2]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
SCHEMAS = {f"no.moteplass.{m.routing_key}": (m, Draft202012Validator(m.schema,
           format_checker=Draft202012Validator.FORMAT_CHECKER)) for m in message_types()}


async def mailed_link(seen: list[dict], registration_id: str) -> str:
    for _ in range(100):
        for message in seen:
            if message["data"].get("registration_id") == registration_id and message["data"].get("manage_url"):
                return message["data"]["manage_url"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no message with the manage link of {registration_id}")


def unmarked_strings(value, path: str, personal: set[str]):
    """(dotted path, string) for every string not under a field marked as personal data."""
    if path in personal:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from unmarked_strings(item, f"{path}.{key}" if path else key, personal)
    elif isinstance(value, list):
        for item in value:
            yield from unmarked_strings(item, f"{path}[]", personal)
    elif isinstance(value, str):
        yield path, value


async def test_every_message_is_valid_traceable_and_keeps_addresses_in_marked_fields(
        start_service, settings, admin_headers, moderator_headers, mailbox):
    connection = await aio_pika.connect(settings.amqp_url)
    seen: list[dict] = []
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(json.loads(message.body))
            await message.ack()

        await queue.consume(collect)

        await start_service(notifications_app, "notifications")
        comments = await start_service(lambda s: comments_app(s, CommentsConfig(
            posts_per_minute=1000, new_threads_per_hour=1000, moderators=["moderator@example.no"])), "comments")
        base = await start_service(registration_app, "registration")
        async with aiohttp.ClientSession(base) as http:
            slug = await create_event(http, admin_headers, capacity=1)
            people = [address() for _ in range(3)]
            registered = []
            for email in people:
                resp = await http.post(f"/events/{slug}/registrations", json=participant(email))
                assert resp.status == 201, await resp.text()
                registered.append(await resp.json())
            seat, waiting, _ = registered
            assert (seat["status"], waiting["status"]) == ("confirmed", "waitlisted")
            page = await mailed_link(seen, seat["id"])  # the manage page; its API twin is the same path without /manage
            assert (await http.delete(page.replace("/manage?", "?"))).status == 204  # the seat frees: the waiting one is promoted
            assert (await http.post(f"/registrations/{waiting['id']}/check-in", headers=admin_headers)).status == 200
            assert (await http.post(f"/registrations/{registered[2]['id']}/erase",
                                    headers=admin_headers)).status in (200, 204)
            resp = await http.patch(f"/events/{slug}", headers=admin_headers, json={"venue": "Sandvika kino"})
            assert resp.status == 200, await resp.text()
            event = await (await http.get(f"/events/{slug}")).json()
            opt_in = {key: event[key] for key in ("title", "kind", "venue", "starts_at", "ends_at", "language")}
            resp = await http.post("/events", headers=admin_headers, json={
                **opt_in, "slug": f"workshop-{uuid.uuid4().hex[:8]}", "capacity": 5,
                "require_email_confirmation": True})
            assert resp.status == 201, await resp.text()
            resp = await http.post(f"/events/{(await resp.json())['slug']}/registrations", json=participant(address()))
            assert resp.status == 201, await resp.text()
            assert (await http.post(f"/events/{slug}/cancel", headers=admin_headers)).status == 200
        async with aiohttp.ClientSession() as http:
            thread = f"/threads/{uuid.uuid4().hex}/comments"
            ids = []
            for text in ("Kjem det opptak?", "Takk!", "Kjøp billig her", "Sletta seinare"):
                status, created, _ = await post(http, comments, comment(body=text), thread_url=thread)
                assert status == 201, created
                ids.append(created["id"])
            await moderate(http, comments, moderator_headers, "approve", ids[0], ids[1], ids[3])
            await moderate(http, comments, moderator_headers, "reject", ids[2])
            await moderate(http, comments, moderator_headers, "delete", ids[3])
            resp = await http.post(f"{comments}/erasure/requests", json={"email": "kari@example.no"})
            assert resp.status == 202, await resp.text()

        wanted = {"registration.confirmed.v1", "registration.waitlisted.v1", "registration.promoted.v1",
                  "registration.cancelled.v2", "registration.checked_in.v1",
                  "registration.erased.v1", "registration.pending.v1", "event.published.v1", "event.updated.v1",
                  "event.cancelled.v1", "comment.submitted.v1", "comment.published.v1", "comment.rejected.v1",
                  "comment.deleted.v1", "comment.erasure_requested.v1", "notification.sent.v2"}
        # The versions replaced, while they are still published beside their successors.
        wanted |= {newer.replaces.event_type for newer in (RegistrationCancelled, NotificationSent)
                   if overlapping(newer)}
        for _ in range(300):
            if wanted <= {m["type"].removeprefix("no.moteplass.") for m in seen}:
                break
            await asyncio.sleep(0.1)
        assert wanted <= {m["type"].removeprefix("no.moteplass.") for m in seen}
    finally:
        await connection.close()

    for message in seen:
        contract, schema = SCHEMAS[message["type"]]
        errors = [error.message for error in schema.iter_errors(message)]
        assert not errors, (message["type"], errors)
        assert message["correlationid"], f"{message['type']} {message['id']} has no correlation id"
        personal = set(contract.personal_fields)
        leaks = [(path, text) for path, text in unmarked_strings(message, "", personal) if EMAIL.search(text)]
        assert not leaks, (message["type"], leaks)
