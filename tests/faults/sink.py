"""The dev mail sink as a process of its own whose SMTP side the fault suite takes down and brings back, while its
HTTP API keeps every mail received and keeps answering: `POST /smtp/down` closes the listener and every open SMTP
connection (new ones are refused, as by a server that is down) and answers how many of them were in the middle of
taking a mail (`{"cut": n}`: the server may keep such a mail while its sender never hears so, and sends it again);
`POST /smtp/up` listens again. Like a real server
it takes a while to accept a mail (`--accept-ms`), so that sends are in flight when a sender is killed.

    python -m tests.faults.sink --smtp-port 2525 --http-port 8025 --accept-ms 100
"""

import argparse
import asyncio

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from moteplass.mailsink import MailSink


class WatchedSMTP(SMTP):
    """An SMTP conversation that keeps itself in its sink's set of open connections."""

    def __init__(self, sink: "SwitchableSink"):
        super().__init__(sink, enable_SMTPUTF8=True)
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sink.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink.connections.discard(self)
        super().connection_lost(error)


class SwitchableSink(MailSink):
    def __init__(self, accept_s: float = 0.0):
        super().__init__()
        self.accept_s = accept_s
        self.connections: set[WatchedSMTP] = set()
        self.receiving: set[SMTP] = set()  # conversations in the middle of taking a mail (after its DATA)
        self.smtp_address: tuple[str, int] = ("127.0.0.1", 0)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.receiving.add(server)
        try:
            await asyncio.sleep(self.accept_s)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.receiving.discard(server)

    def smtp_protocol(self) -> SMTP:
        return WatchedSMTP(self)

    async def start(self, host: str = "127.0.0.1", smtp_port: int = 1025, http_port: int = 8025) -> None:
        self.smtp_address = (host, smtp_port)
        await super().start(host, smtp_port, http_port)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/smtp/down", self.smtp_down)
        app.router.add_post("/smtp/up", self.smtp_up)
        return app

    async def smtp_down(self, request: web.Request) -> web.Response:
        cut = len(self.receiving)
        if self.smtp_server is not None:
            self.smtp_server.close()
            # close, not abort: a 250 already written still reaches the client before the connection ends.
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.close()
            await self.smtp_server.wait_closed()
            self.smtp_server = None
        return web.json_response({"cut": cut})

    async def smtp_up(self, request: web.Request) -> web.Response:
        if self.smtp_server is None:
            self.smtp_server = await asyncio.get_running_loop().create_server(self.smtp_protocol, *self.smtp_address)
        return web.Response(text="up")


async def serve(host: str, smtp_port: int, http_port: int, accept_s: float) -> None:
    sink = SwitchableSink(accept_s)
    await sink.start(host, smtp_port, http_port)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--accept-ms", type=float, default=0.0, help="time taken to accept each mail")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.smtp_port, args.http_port, args.accept_ms / 1000))
