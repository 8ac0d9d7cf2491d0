"""Dev mail sink: an SMTP server that keeps every message and serves a subset of Mailpit's HTTP API, so the same
tests and tools read mail from it and from a real Mailpit (compose) unchanged."""

import asyncio
import email
import email.policy
import uuid
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses
from functools import cached_property

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


def _utf8(value: str) -> str:
    """A header read from bytes keeps its non-ASCII octets as surrogates: read them as UTF-8, as Mailpit does (RFC
    6532: the headers of a mail sent with SMTPUTF8, e.g. an address with æ before the @)."""
    return value if value.isascii() else value.encode("ascii", "surrogateescape").decode("utf-8", "replace")


def _header(message: Message, name: str) -> str | None:
    # The raw value: the compat32 policy would hand a header with 8-bit octets back as an unknown-8bit Header.
    return next((_utf8(value) for key, value in message.raw_items() if key.lower() == name.lower()), None)


def _decoded(value: str | None) -> str:
    return str(make_header(decode_header(value))) if value else ""


def _addresses(value: str | None) -> list[dict]:
    # Split before decoding: an encoded display name may hold a comma or an address of its own.
    return [{"Name": _decoded(name), "Address": addr} for name, addr in getaddresses([value or ""]) if addr]


def _is_attachment(part: Message) -> bool:
    return bool(part.get_filename()) or part.get_content_type() not in ("text/plain", "text/html")


class StoredMessage:
    def __init__(self, raw: bytes, envelope: Envelope):
        self.id = uuid.uuid4().hex
        self.raw = raw
        self.created = datetime.now(UTC)
        self.envelope_to = list(envelope.rcpt_tos)

    # Parsed when first read, not while the SMTP client waits: accepting a mail stays cheap, as in Mailpit.
    @cached_property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @cached_property
    def parts(self) -> list[EmailMessage]:
        return [part for part in self.parsed.walk() if not part.is_multipart()]

    # The listing is polled while mail arrives: it reads the classic (compat32) parse, about ten times cheaper
    # than the default policy's header objects.
    @cached_property
    def _light(self) -> Message:
        return email.message_from_bytes(self.raw, policy=email.policy.compat32)

    def _snippet(self) -> str:
        for part in self._light.walk():
            if part.get_content_type() == "text/plain" and not part.get_filename():
                text = (part.get_payload(decode=True) or b"").decode(part.get_content_charset() or "utf-8", "replace")
                return " ".join(text.split())[:250]
        return ""

    def _body(self, subtype: str) -> str:
        part = self.parsed.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None and part.get_content_type() == f"text/{subtype}" else ""

    @cached_property
    def attachments(self) -> list[dict]:
        return [{"PartID": str(i), "FileName": part.get_filename() or "", "ContentType": part.get_content_type(),
                 "Size": len(part.get_payload(decode=True) or b"")}
                for i, part in enumerate(self.parts, 1) if _is_attachment(part)]

    @cached_property
    def summary(self) -> dict:
        msg = self._light
        to = _addresses(_header(msg, "To")) or [{"Name": "", "Address": a} for a in self.envelope_to]
        attachments = sum(1 for part in msg.walk() if not part.is_multipart() and _is_attachment(part))
        return {"ID": self.id, "MessageID": (_header(msg, "Message-ID") or "").strip().strip("<>"), "Read": False,
                "From": (_addresses(_header(msg, "From")) or [{}])[0], "To": to,
                "Cc": _addresses(_header(msg, "Cc")), "Bcc": [], "ReplyTo": _addresses(_header(msg, "Reply-To")),
                "Subject": _decoded(_header(msg, "Subject")),
                "Created": self.created.isoformat(), "Tags": [], "Size": len(self.raw), "Attachments": attachments,
                "Snippet": self._snippet()}

    @cached_property
    def detail(self) -> dict:
        return {**self.summary, "Date": str(self.parsed.get("Date", "")), "Text": self._body("plain"),
                "HTML": self._body("html"), "Attachments": self.attachments, "Inline": []}

    @cached_property
    def headers(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for (name, value), (_, raw) in zip(self.parsed.items(), self.parsed.raw_items(), strict=True):
            result.setdefault(name, []).append(str(value) if raw.isascii() else _utf8(raw))
        return result


class MailSink:
    def __init__(self):
        self.messages: list[StoredMessage] = []  # newest first, as Mailpit lists them
        self.smtp_server: asyncio.Server | None = None
        self.http_runner: web.AppRunner | None = None

    # aiosmtpd handler hook
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.insert(0, StoredMessage(envelope.original_content or envelope.content, envelope))
        return "250 Message accepted for delivery"

    def find(self, message_id: str) -> StoredMessage:
        if message_id == "latest" and self.messages:
            return self.messages[0]
        for message in self.messages:
            if message.id == message_id:
                return message
        raise web.HTTPNotFound(text="message not found")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/messages", self.list_messages)
        app.router.add_delete("/api/v1/messages", self.delete_messages)
        app.router.add_get("/api/v1/message/{id}", self.get_message)
        app.router.add_get("/api/v1/message/{id}/headers", self.get_headers)
        app.router.add_get("/api/v1/message/{id}/raw", self.get_raw)
        app.router.add_get("/api/v1/message/{id}/part/{part}", self.get_part)
        return app

    async def list_messages(self, request: web.Request) -> web.Response:
        try:
            start = int(request.query.get("start", 0))
            limit = int(request.query.get("limit", 50))
        except ValueError:
            raise web.HTTPBadRequest(text="start and limit must be integers") from None
        page = self.messages[start:start + limit]
        return web.json_response({"total": len(self.messages), "unread": len(self.messages), "count": len(page),
                                  "messages_count": len(self.messages), "start": start, "tags": [],
                                  "messages": [m.summary for m in page]})

    async def delete_messages(self, request: web.Request) -> web.Response:
        try:
            ids = (await request.json()).get("IDs") if request.can_read_body else None
        except (ValueError, AttributeError):
            raise web.HTTPBadRequest(text='expected no body or {"IDs": [...]}') from None
        self.messages = [m for m in self.messages if ids and m.id not in ids]
        return web.Response(text="ok")

    async def get_message(self, request: web.Request) -> web.Response:
        return web.json_response(self.find(request.match_info["id"]).detail)

    async def get_headers(self, request: web.Request) -> web.Response:
        return web.json_response(self.find(request.match_info["id"]).headers)

    async def get_raw(self, request: web.Request) -> web.Response:
        return web.Response(body=self.find(request.match_info["id"]).raw, content_type="text/plain")

    async def get_part(self, request: web.Request) -> web.Response:
        message = self.find(request.match_info["id"])
        index = int(request.match_info["part"]) - 1
        if not 0 <= index < len(message.parts):
            raise web.HTTPNotFound(text="part not found")
        part = message.parts[index]
        return web.Response(body=part.get_payload(decode=True) or b"", content_type=part.get_content_type())

    def smtp_protocol(self) -> SMTP:
        """The SMTP conversation of one connection (a subclass may watch its connections)."""
        return SMTP(self, enable_SMTPUTF8=True)

    async def start(self, host: str = "127.0.0.1", smtp_port: int = 1025, http_port: int = 8025) -> None:
        loop = asyncio.get_running_loop()
        self.smtp_server = await loop.create_server(self.smtp_protocol, host, smtp_port)
        self.http_runner = web.AppRunner(self.app(), access_log=None)
        await self.http_runner.setup()
        await web.TCPSite(self.http_runner, host, http_port).start()

    async def stop(self) -> None:
        if self.http_runner:
            await self.http_runner.cleanup()
        if self.smtp_server:
            self.smtp_server.close()
            await self.smtp_server.wait_closed()


async def serve(host: str, smtp_port: int, http_port: int) -> None:
    sink = MailSink()
    await sink.start(host, smtp_port, http_port)
    try:
        await asyncio.Event().wait()
    finally:
        await sink.stop()
