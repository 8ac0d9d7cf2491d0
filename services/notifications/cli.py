"""`moteplass notifications dead|replay`: the parking queue from the command line (also admin HTTP endpoints)."""

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika.exceptions
import click

from shared.bus import Bus, QueueNames
from shared.settings import get_settings

from . import deadletters
from .app import SERVICE


async def _with_bus(action: Callable[[Bus, QueueNames], Awaitable]):
    settings = get_settings()
    bus = await Bus(settings, source="/moteplass/notifications-cli").connect()
    try:
        return await action(bus, QueueNames(settings.queue_name(SERVICE)))
    except aio_pika.exceptions.ChannelNotFoundEntity as exc:
        raise click.ClickException("The parking queue does not exist yet: has the notifications service run?") from exc
    finally:
        await bus.close()


@click.group()
def notifications() -> None:
    """Messages the notifications service parked after too many failed attempts."""


@notifications.command()
@click.option("--limit", default=100, show_default=True, help="List at most this many.")
def dead(limit: int) -> None:
    """List parked messages (the envelope only: payloads hold personal data)."""
    parked = asyncio.run(_with_bus(lambda bus, names: deadletters.parked(bus, names, limit)))
    click.echo(f"{len(parked)} parked message(s)")
    for message in parked:
        click.echo(f"{message.message_id}  {message.type}  attempts={message.attempts}  {message.error or ''}")


@notifications.command()
def replay() -> None:
    """Move every parked message back to the main queue to be tried again."""
    moved = asyncio.run(_with_bus(deadletters.replay))
    click.echo(f"{moved} message(s) re-queued")

