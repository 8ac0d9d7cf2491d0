"""The parking queue `<queue>.dead`: list what is parked there and move it back to the main queue."""

import json

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel

from shared.bus import ATTEMPTS_HEADER, Bus, QueueNames


class ParkedMessage(BaseModel):
    message_id: str | None
    type: str | None
    subject: str | None
    attempts: int
    error: str | None


def describe(message: AbstractIncomingMessage) -> ParkedMessage:
    # Only the envelope's attributes: the payload may hold personal data.
    try:
        envelope = json.loads(message.body)
        subject = envelope.get("subject") if isinstance(envelope, dict) else None
    except ValueError:
        subject = None
    headers = message.headers or {}
    error = headers.get("x-error")
    return ParkedMessage(message_id=message.message_id, type=message.type, subject=subject,
                         attempts=int(headers.get(ATTEMPTS_HEADER, 0)),
                         error=error.decode() if isinstance(error, bytes) else error)


async def parked(bus: Bus, names: QueueNames, limit: int = 100) -> list[ParkedMessage]:
    """Look without taking: the messages stay unacknowledged until the channel closes, then return in place."""
    channel = await bus.connection.channel()
    try:
        queue = await channel.declare_queue(names.dead, passive=True)
        found = []
        while len(found) < limit and (message := await queue.get(no_ack=False, fail=False)) is not None:
            found.append(describe(message))
        return found
    finally:
        await channel.close()


async def replay(bus: Bus, names: QueueNames) -> int:
    """Move every parked message back to the main queue, with a fresh count of attempts. Each is acknowledged
    only after the broker confirmed its copy, so none is lost. A message seen twice was parked again while this
    ran: it stays for the next replay (and ends the run, which could otherwise go round forever)."""
    channel = await bus.connection.channel()
    try:
        queue = await channel.declare_queue(names.dead, passive=True)
        moved: set[str | None] = set()
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            if message.message_id in moved:
                break  # left unacknowledged: it returns to the queue when the channel closes
            await bus.send_to_queue(names.main, message, {ATTEMPTS_HEADER: 0})
            await message.ack()
            moved.add(message.message_id)
        return len(moved)
    finally:
        await channel.close()
