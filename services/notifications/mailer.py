"""SMTP delivery with aiosmtplib: a few reused connections (reopened when they drop), a timeout per message, and
every failure classed as transient (retry later) or permanent (5xx: retrying cannot help)."""

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiosmtplib
from opentelemetry.trace import SpanKind, Tracer

from shared import tracing
from shared.settings import Settings, SmtpSecurity

from .domain import is_permanent
from .render import Outgoing

# Connections kept open to the SMTP server: this many SMTP conversations overlap.
POOL_SIZE = 16


class DeliveryError(Exception):
    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def _code(exc: aiosmtplib.SMTPException) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return max(r.code for r in exc.recipients) if exc.recipients else None
    return getattr(exc, "code", None) if isinstance(exc, aiosmtplib.SMTPResponseException) else None


class Mailer:
    def __init__(self, settings: Settings, pool_size: int = POOL_SIZE, tracer: Tracer = tracing.OFF):
        self.settings, self.pool_size, self.tracer = settings, pool_size, tracer
        self.idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        for _ in range(pool_size):
            self.idle.put_nowait(self._client())

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_s, cert_bundle=s.smtp_ca_file,
            username=s.smtp_user, password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_security == SmtpSecurity.tls, start_tls=s.smtp_security == SmtpSecurity.starttls)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Callable[[Outgoing], Awaitable[None]]]:
        """Hold one of the pooled connections; yields the function that sends a message over it."""
        client = await self.idle.get()
        try:
            yield functools.partial(self._send, client)
        finally:
            self.idle.put_nowait(client)

    async def _send(self, client: aiosmtplib.SMTP, message: Outgoing) -> None:
        """Deliver one message or raise DeliveryError saying whether a retry could help."""
        # The last span of a trace that began with the request: it ends when the server has accepted the mail.
        with tracing.span(self.tracer, "smtp sendmail", SpanKind.CLIENT, attributes={
                "server.address": self.settings.smtp_host, "server.port": self.settings.smtp_port}):
            await self._deliver(client, message)

    async def _deliver(self, client: aiosmtplib.SMTP, message: Outgoing) -> None:
        try:
            async with asyncio.timeout(self.settings.smtp_timeout_s):
                if not client.is_connected:
                    await client.connect()
                await client.sendmail(message.sender, message.recipients, message.data,
                                      mail_options=["SMTPUTF8"] if message.smtputf8 else None)
        except aiosmtplib.SMTPNotSupported as exc:
            # Said before the envelope (the connection stays good): this server cannot take such an address, now
            # or on a retry. Registration refuses these addresses unless SMTP_UTF8 says the server takes them.
            raise DeliveryError(f"the mail server does not offer SMTPUTF8, which this address needs: {exc}",
                                permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._drop(client)
            code = _code(exc) if isinstance(exc, aiosmtplib.SMTPException) else None
            raise DeliveryError(f"{exc.__class__.__name__}: {exc}", permanent=is_permanent(code)) from exc
        except BaseException:
            self._drop(client)  # cancelled mid-conversation: the connection's state is unknown
            raise

    @staticmethod
    def _drop(client: aiosmtplib.SMTP) -> None:
        # A connection in an unknown state is closed; the next send opens a fresh one.
        if client.is_connected:
            client.close()

    async def close(self) -> None:
        # All at once: a server that stopped answering costs the shutdown one timeout, not one per connection.
        clients = []
        while not self.idle.empty():
            clients.append(self.idle.get_nowait())
        await asyncio.gather(*(self._quit(client) for client in clients if client.is_connected))

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        try:
            await asyncio.wait_for(client.quit(), timeout=2)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
