"""The SMTP connection pool against a local server that stops answering."""

import asyncio
import time

from services.notifications.mailer import Mailer
from shared.settings import Settings


async def test_closing_quits_every_connection_at_once():
    """A server that stops answering costs a shutdown one QUIT timeout (2 s), not one per pooled connection."""
    quits = []

    async def greet_then_go_silent(reader, writer):
        writer.write(b"220 smtp.example.no\r\n")
        while line := await reader.readline():
            if line.upper().startswith(b"EHLO"):
                writer.write(b"250 smtp.example.no\r\n")
            elif line.upper().startswith(b"QUIT"):
                quits.append(line)  # and never answered

    server = await asyncio.start_server(greet_then_go_silent, "127.0.0.1", 0)
    settings = Settings(smtp_host="127.0.0.1", smtp_port=server.sockets[0].getsockname()[1], smtp_security="plain")
    mailer = Mailer(settings, pool_size=4)
    clients = [mailer.idle.get_nowait() for _ in range(4)]
    for client in clients:
        await client.connect()
        mailer.idle.put_nowait(client)
    started = time.monotonic()
    await mailer.close()
    assert len(quits) == 4 and time.monotonic() - started < 4
    assert not any(client.is_connected for client in clients)
    server.close()
