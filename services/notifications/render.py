"""A planned mail becomes an RFC 5322 message: Jinja2 templates per kind and language (HTML autoescaped), dates
in Norwegian style in the event's timezone (Babel), an iCalendar invitation, and headers user text cannot break."""

import base64
import binascii
import email.policy
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.message import Message
from email.utils import format_datetime as rfc2822_date, formataddr, parseaddr
from zoneinfo import ZoneInfo

import icalendar
from babel.dates import format_datetime, format_time
from icalendar.parser import Contentline, Parameters
from jinja2 import Environment, PackageLoader, StrictUndefined

from shared import addresses
from shared.messages import Language
from shared.messages.registration import EventInfo, calendar_uid

from .domain import IcsMethod, Mail, clean, mail_id

LOCALES = {Language.nn: "nn", Language.nb: "nb", Language.en: "en_GB"}
DAY = {Language.nn: "EEEE d. MMMM y 'kl.'", Language.nb: "EEEE d. MMMM y 'kl.'", Language.en: "EEEE d MMMM y,"}
# Norwegian style writes "kl. 10.00"; English "10:00".
CLOCK = {Language.nn: "HH.mm", Language.nb: "HH.mm", Language.en: "HH:mm"}
# Longer names are shortened in the To header (only): it must stay far below SMTP's line limit unfolded.
HEADER_NAME_MAX = 80


def when(event: EventInfo, language: Language) -> str:
    """'torsdag 3. desember 2026 kl. 10.00–15.00' in the event's own timezone."""
    return _span(event.starts_at, event.ends_at, event.timezone, language)


# The same for every mail about one version of a møteplass in one language, and Babel's formatting is costly.
@functools.lru_cache(maxsize=256)
def _span(starts_at: datetime, ends_at: datetime, timezone: str, language: Language) -> str:
    zone, locale = ZoneInfo(timezone), LOCALES[language]
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    first = _moment(start, timezone, language)
    if start.date() == end.date():
        return f"{first}–{format_time(end, CLOCK[language], tzinfo=zone, locale=locale)}"
    return f"{first} – {_moment(end, timezone, language)}"


def moment(value: datetime, event: EventInfo | None, language: Language) -> str:
    """A point in time, in the event's timezone (Norway's for mail about no event)."""
    return _moment(value, event.timezone if event else EventInfo.model_fields["timezone"].default, language)


def _moment(value: datetime, timezone: str, language: Language) -> str:
    return format_datetime(value, f"{DAY[language]} {CLOCK[language]}", tzinfo=ZoneInfo(timezone),
                           locale=LOCALES[language])


def _environment(autoescape: bool) -> Environment:
    # auto_reload off: the templates ship with the code, so there is no need to stat their files for every mail.
    env = Environment(loader=PackageLoader("services.notifications", "templates"), autoescape=autoescape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      auto_reload=False)
    env.filters["clean"] = clean
    return env


# One set of templates, read twice: subject and plain text unescaped, HTML autoescaped.
TEXT, HTML = _environment(autoescape=False), _environment(autoescape=True)


def renderer(mail: Mail, unsubscribe_url: str | None) -> Callable[[str], str]:
    """Renders the parts (subject, text, html) of a mail; what they share is worked out once."""
    event = mail.event
    context = {"name": clean(mail.name), "event": event, "unsubscribe_url": unsubscribe_url,
               "when": when(event, mail.language) if event else "", "ics": mail.ics,
               "moment": lambda value: moment(value, event, mail.language), **mail.context}
    name = f"{mail.language.value}/{mail.kind.value}.j2"

    def render(part: str) -> str:
        return (HTML if part == "html" else TEXT).get_template(name).render(part=part, **context)

    return render


def invitation(mail: Mail, organizer: str) -> bytes:
    """An iCalendar invitation; its UID stays the same for the registration so updates replace it."""
    before, after = _shared_lines(mail.event.model_dump_json(), mail.ics, organizer)
    attendee = icalendar.vCalAddress(f"mailto:{mail.recipient}")
    attendee.params["cn"] = clean(mail.name) or mail.recipient
    attendee.params["role"] = "REQ-PARTICIPANT"
    # Written line by line with the library's value types and line folding, not through an Event component,
    # whose property handling cost twice as much for these three lines.
    own = [Contentline.from_parts("UID", Parameters(),
                                  icalendar.vText(calendar_uid(mail.event.slug, mail.registration_id)).to_ical()),
           Contentline.from_parts("DTSTAMP", Parameters(), icalendar.vDDDTypes(datetime.now(UTC)).to_ical()),
           Contentline.from_parts("ATTENDEE", attendee.params, attendee.to_ical())]
    return before + b"".join(line.to_ical() + b"\r\n" for line in own) + after


@functools.lru_cache(maxsize=64)
def _shared_lines(event_json: str, method: IcsMethod, organizer: str) -> tuple[bytes, bytes]:
    """The invitation as it is for every attendee of one version of a møteplass, written once and split where
    each attendee's own lines (UID, DTSTAMP, ATTENDEE) go: the library's writing is most of an invitation's cost."""
    event = EventInfo.model_validate_json(event_json)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Møteplass//notifications//NO")
    cal.add("version", "2.0")
    cal.add("method", method.value)
    entry = icalendar.Event()
    entry.add("sequence", event.sequence)
    entry.add("dtstart", event.starts_at.astimezone(UTC))
    entry.add("dtend", event.ends_at.astimezone(UTC))
    entry.add("summary", clean(event.title))
    entry.add("location", clean(", ".join(filter(None, [event.venue, event.address]))))
    if event.url:
        entry.add("url", event.url)
    entry.add("status", "CANCELLED" if method == IcsMethod.cancel else "CONFIRMED")
    entry.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    cal.add_component(entry)
    before, after = cal.to_ical().split(b"END:VEVENT\r\n", 1)
    return before, b"END:VEVENT\r\n" + after


@dataclass(frozen=True)
class Outgoing:
    """A mail ready for SMTP: the envelope and the message as written on the wire (in UTF-8 headers, RFC 6532,
    when an address needs SMTPUTF8)."""
    sender: str
    recipients: list[str]
    data: bytes
    smtputf8: bool = False


# The message is built with the classic (compat32) MIME classes and written by their generator: several times
# cheaper in CPU than EmailMessage's header parsing and refolding, which was most of the service's cost per mail.
# Every header that can hold non-ASCII text is RFC 2047 encoded here, so nothing is written unencoded, and user
# text has had its control characters taken out (`clean`), so nothing can start a header of its own.
# Headers stay unfolded (far below SMTP's 998; render caps names): folding a quoted display name is legal, but a
# careless reader of the folded form could take an address in the name for a second recipient.
class _Wire(email.policy.Compat32):
    def _fold(self, name, value, sanitize):
        # Most headers are short ASCII, written as they are; the Header machinery (a third of the cost of writing
        # a message) is left to the encoded and the long ones.
        if isinstance(value, str) and value.isascii() and len(name) + len(value) + 2 <= self.max_line_length \
                and "\r" not in value and "\n" not in value:
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)

    # With SMTPUTF8 (RFC 6532) a header may hold UTF-8 as it is: only an address needs it (everything else is
    # encoded beforehand), and an address cannot be an encoded word.
    utf8 = False

    def fold_binary(self, name, value):
        if self.utf8 and isinstance(value, str) and not value.isascii() and "\r" not in value and "\n" not in value:
            return f"{name}: {value}{self.linesep}".encode()
        return super().fold_binary(name, value)


WIRE = _Wire(linesep="\r\n", max_line_length=998)
WIRE_UTF8 = WIRE.clone(utf8=True)


# One encoded word per header, Q-encoded (readable): choosing the shortest encoding costs more than the rest.
UTF8 = Charset("utf-8")
UTF8.header_encoding = QP


def _text(value: str) -> str:
    return value if value.isascii() else UTF8.header_encode(value)


def _multipart(subtype: str, parts: list[Message]) -> Message:
    # A random boundary given here spares the generator its search of the whole body for a collision ("=_" occurs
    # in neither quoted-printable nor base64).
    return _part(f'multipart/{subtype}; boundary="=_{uuid.uuid4().hex}"', None, parts)


def _part(content_type: str, encoding: str | None, payload: str | list[Message], disposition: str | None = None,
          ) -> Message:
    # Headers written as they are meant, payloads encoded beforehand (binascii, in C): the MIME classes' parameter
    # and charset handling was a third of a message's cost. Every value here is ASCII the code chose.
    part = Message(policy=WIRE)
    part["Content-Type"] = content_type
    if encoding:
        part["Content-Transfer-Encoding"] = encoding
    if disposition:
        part["Content-Disposition"] = disposition
    part.set_payload(payload)
    return part


def _text_part(subtype: str, text: str) -> Message:
    # Quoted-printable: the Norwegian text stays mostly readable and short, in 7-bit lines of at most 76 characters.
    return _part(f'text/{subtype}; charset="utf-8"', "quoted-printable",
                 binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))


@functools.lru_cache(maxsize=8)
def _from(sender: str) -> tuple[str, str, str]:
    """The envelope sender, the From header and the domain of Message-IDs, the same for every mail."""
    name, address = parseaddr(sender)
    address = addresses.on_the_wire(address)
    return address, formataddr((name, address), charset=UTF8), address.rpartition("@")[2]


def _mailbox(name: str, address: str) -> str:
    """A To header's value: the name quoted or one encoded word, the address as on the wire."""
    if address.isascii():
        return formataddr((name, address), charset=UTF8)
    # formataddr refuses a non-ASCII address (it cannot be encoded); the name is written by it all the same.
    return f"{formataddr((name, ''), charset=UTF8)[:-2]}<{address}>" if name else address


def compose(mail: Mail, sender: str, message_id: str, unsubscribe_url: str | None = None) -> Outgoing:
    """The mail as it goes out for a message (its id): the same Message-ID for every attempt at it."""
    from_addr, from_header, id_domain = _from(sender)
    recipient = addresses.on_the_wire(mail.recipient)
    render = renderer(mail, unsubscribe_url)
    body = _multipart("alternative", [_text_part("plain", render("text")), _text_part("html", render("html"))])
    if mail.ics and mail.event:
        ics = _part(f'text/calendar; method={mail.ics.value}; charset="utf-8"', "base64",
                    base64.encodebytes(invitation(mail, from_addr)).decode("ascii"),
                    disposition='attachment; filename="invitasjon.ics"')
        body = _multipart("mixed", [body, ics])
    body["MIME-Version"] = "1.0"
    # A display name is quoted (ASCII) or one encoded word: several encoded words in a phrase are read back with
    # spaces inserted between them by some parsers (CPython's among them).
    body["From"] = from_header
    body["To"] = _mailbox(clean(mail.name)[:HEADER_NAME_MAX], recipient)
    body["Subject"] = _text(clean(render("subject")))
    body["Date"] = rfc2822_date(datetime.now(UTC))
    body["Message-ID"] = f"<{mail_id(message_id, mail.recipient, mail.kind)}@{id_domain}>"
    body["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        body["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        body["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    utf8 = addresses.needs_smtputf8(recipient)
    return Outgoing(from_addr, [recipient], body.as_bytes(policy=WIRE_UTF8 if utf8 else WIRE), utf8)
