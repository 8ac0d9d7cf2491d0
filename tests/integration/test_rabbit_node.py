"""The private RabbitMQ node helper (tests/support/rabbit_node.py) that broker-fault tests stand on: it boots its
own node beside the shared one, stops and starts the broker application on request, and leaves nothing behind."""

import aio_pika
import pytest

from tests.support.rabbit_node import RabbitNode, RabbitNodeError

pytestmark = pytest.mark.integration


async def round_trip(url: str, body: bytes) -> bytes:
    """Publish one message to a fresh queue on the node at url and read it back."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
        message = await queue.get(timeout=5)
        await message.ack()
        return message.body


async def test_private_node_stops_and_starts_its_app_and_stops_for_good(rabbit_node: RabbitNode):
    assert rabbit_node.port != 5672 and not rabbit_node.name.startswith("rabbit@")
    assert await round_trip(rabbit_node.amqp_url, b"before") == b"before"
    assert rabbit_node.name in await rabbit_node.ctl("status")

    await rabbit_node.stop_app()
    with pytest.raises(aio_pika.exceptions.AMQPConnectionError):
        await aio_pika.connect(rabbit_node.amqp_url)
    assert rabbit_node.process.poll() is None  # the Erlang VM keeps running

    await rabbit_node.start_app()
    assert await round_trip(rabbit_node.amqp_url, b"after") == b"after"


    await rabbit_node.stop()
    assert rabbit_node.process.poll() is not None
    with pytest.raises(RabbitNodeError):
        await rabbit_node.ctl("status", timeout_s=30)
