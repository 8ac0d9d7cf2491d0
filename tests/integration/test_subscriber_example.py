"""The README's minimal consumer (docs/examples/subscriber.py), run as another system would run it, against the
live bus: it declares its own quorum queue, hears a registration's message, and handles a redelivered copy once."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

import aio_pika
import aiohttp

from services.registration.app import create_app as registration_app
from tests.integration.e2e.test_registration_to_mail import address, create_event, participant

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "subscriber.py"


async def test_the_example_subscriber_hears_each_message_once(start_service, settings, admin_headers):
    queue = f"{settings.queue_prefix}other-system-{uuid.uuid4().hex[:6]}"
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "AMQP_URL": settings.amqp_url, "EXCHANGE": settings.exchange, "QUEUE": queue,
             "BINDINGS": "registration.#", "MAX_MESSAGES": "2"})
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        for _ in range(100):  # until the subscriber has declared its queue
            try:
                await (await connection.channel()).declare_queue(queue, passive=True)
                break
            except aio_pika.exceptions.ChannelClosed:
                await asyncio.sleep(0.1)
        base = await start_service(registration_app, "registration")
        async with aiohttp.ClientSession(base) as http:
            slug = await create_event(http, admin_headers, capacity=5)
            first = await http.post(f"/events/{slug}/registrations", json=participant(address()))
            assert first.status == 201
            line = (await asyncio.wait_for(subscriber.stdout.readline(), 30)).decode().split()
            assert line[0] == "no.moteplass.registration.confirmed.v1" and line[2] != "None"
            # The same message again (a redelivery): handled once. Then a new one ends the run.
            exchange = await channel.get_exchange(settings.exchange)
            copy = aio_pika.Message(b'{"id": "%s", "type": "%s"}' % (line[1].encode(), line[0].encode()))
            await exchange.publish(copy, routing_key="registration.confirmed.v1")
            assert (await http.post(f"/events/{slug}/registrations", json=participant(address()))).status == 201
            second = (await asyncio.wait_for(subscriber.stdout.readline(), 30)).decode().split()
            assert second[0] == "no.moteplass.registration.confirmed.v1" and second[1] != line[1]
        assert await asyncio.wait_for(subscriber.wait(), 30) == 0
        for name in (queue, f"{queue}.dead"):
            await channel.queue_delete(name)
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
            await subscriber.wait()
        await connection.close()
