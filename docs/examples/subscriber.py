"""A minimal subscriber from another system: its own durable quorum queue with a dead-letter queue, bound to the
Møteplass exchange, deduplicating by CloudEvent id, ignoring what it does not know (the README's "Subscribing from
another system"). Needs only aio-pika; run with AMQP_URL, EXCHANGE (moteplass.events), QUEUE (your system's name),
BINDINGS (comma-separated, e.g. "registration.#,event.#") and, to stop after a number of messages, MAX_MESSAGES.

Prints one line per message it handled: "<type> <id> <correlationid>"."""

import asyncio
import json
import os

import aio_pika


async def main() -> None:
    queue_name = os.environ.get("QUEUE", "my-system")
    max_messages = int(os.environ.get("MAX_MESSAGES", "0"))
    connection = await aio_pika.connect_robust(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=50)
    exchange = await channel.declare_exchange(os.environ.get("EXCHANGE", "moteplass.events"),
                                              aio_pika.ExchangeType.TOPIC, durable=True)
    # A quorum queue survives a broker node; what you cannot handle goes to your own dead-letter queue, not away.
    await channel.declare_queue(f"{queue_name}.dead", durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(queue_name, durable=True, arguments={
        "x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{queue_name}.dead",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
    for pattern in os.environ.get("BINDINGS", "registration.#").split(","):
        await queue.bind(exchange, pattern.strip())

    seen: set[str] = set()  # keep this in your own store, with what the message did, in one transaction
    handled = 0
    async with queue.iterator() as messages:
        async for message in messages:
            try:
                event = json.loads(message.body)
                if event["id"] not in seen:  # delivery is at least once: the same id may come again
                    seen.add(event["id"])
                    # Read the fields you need; ignore the ones you do not know (new ones may come within a version).
                    print(event["type"], event["id"], event.get("correlationid"), flush=True)
                    handled += 1
                await message.ack()
            except (ValueError, KeyError):
                await message.reject(requeue=False)  # unreadable: dead-lettered for a person to look at
            if max_messages and handled >= max_messages:
                break
    await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
