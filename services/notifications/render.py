"""A planned mail becomes an RFC 5322 message: Jinja2 templates per kind and language (HTML autoescaped), dates
in Norwegian style in the event's timezone (Babel), an iCalendar invitation, and headers user text cannot break."""

import email.policy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.encoders import encode_base64
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime as rfc2822_date, formataddr, make_msgid, parseaddr
from zoneinfo import ZoneInfo

import icalendar
from babel.dates import format_datetime, format_time
from jinja2 import Environment, PackageLoader, StrictUndefined

from shared.messages import Language
from shared.messages.registration import EventInfo

from .domain import Mail, clean

LOCALES = {Language.nn: "nn", Language.nb: "nb", Language.en: "en_GB"}
DAY = {Language.nn: "EEEE d. MMMM y 'kl.'", Language.nb: "EEEE d. MMMM y 'kl.'", Language.en: "EEEE d MMMM y,"}
# Norwegian style writes "kl. 10.00"; English "10:00".
CLOCK = {Language.nn: "HH.mm", Language.nb: "HH.mm", Language.en: "HH:mm"}
ICS_DOMAIN = "moteplass.no"
# Longer names are shortened in the To header (only): it must stay far below SMTP's line limit unfolded.
HEADER_NAME_MAX = 80


def when(event: EventInfo, language: Language) -> str:
    """'torsdag 3. desember 2026 kl. 10.00–15.00' in the event's own timezone."""
    zone, locale = ZoneInfo(event.timezone), LOCALES[language]
    start, end = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    first = moment(start, event, language)
    if start.date() == end.date():
        return f"{first}–{format_time(end, CLOCK[language], tzinfo=zone, locale=locale)}"
    return f"{first} – {moment(end, event, language)}"


def moment(value: datetime, event: EventInfo | None, language: Language) -> str:
    """A point in time, in the event's timezone (Norway's for mail about no event)."""
    zone = ZoneInfo(event.timezone if event else EventInfo.model_fields["timezone"].default)
    return format_datetime(value, f"{DAY[language]} {CLOCK[language]}", tzinfo=zone, locale=LOCALES[language])


def _environment(autoescape: bool) -> Environment:
    env = Environment(loader=PackageLoader("services.notifications", "templates"), autoescape=autoescape,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["clean"] = clean
    return env


# One set of templates, read twice: subject and plain text unescaped, HTML autoescaped.
TEXT, HTML = _environment(autoescape=False), _environment(autoescape=True)


def render(mail: Mail, part: str, unsubscribe_url: str | None) -> str:
    env = HTML if part == "html" else TEXT
    template = env.get_template(f"{mail.language.value}/{mail.kind.value}.j2")
    event = mail.event
    return template.render(
        part=part, name=clean(mail.name), event=event, unsubscribe_url=unsubscribe_url,
        when=when(event, mail.language) if event else "",
        ics=mail.ics, moment=lambda value: moment(value, event, mail.language), **mail.context)


def invitation(mail: Mail, organizer: str) -> bytes:
    """An iCalendar invitation; its UID stays the same for the registration so updates replace it."""
    event = mail.event
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Møteplass//notifications//NO")
    cal.add("version", "2.0")
    cal.add("method", mail.ics.value)
    entry = icalendar.Event()
    entry.add("uid", f"{event.slug}.{mail.registration_id}@{ICS_DOMAIN}")
    entry.add("sequence", event.sequence)
    entry.add("dtstamp", datetime.now(UTC))
    entry.add("dtstart", event.starts_at.astimezone(UTC))
    entry.add("dtend", event.ends_at.astimezone(UTC))
    entry.add("summary", clean(event.title))
    entry.add("location", clean(", ".join(filter(None, [event.venue, event.address]))))
    if event.url:
        entry.add("url", event.url)
    entry.add("status", "CANCELLED" if mail.ics.value == "CANCEL" else "CONFIRMED")
    entry.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
    attendee = icalendar.vCalAddress(f"mailto:{mail.recipient}")
    attendee.params["cn"] = clean(mail.name) or mail.recipient
    attendee.params["role"] = "REQ-PARTICIPANT"
    entry.add("attendee", attendee)
    cal.add_component(entry)
    return cal.to_ical()


@dataclass(frozen=True)
class Outgoing:
    """A mail ready for SMTP: the envelope and the message as written on the wire."""
    sender: str
    recipients: list[str]
    data: bytes


# The message is built with the classic (compat32) MIME classes and written by their generator: several times
# cheaper in CPU than EmailMessage's header parsing and refolding, which was most of the service's cost per mail.
# Every header that can hold non-ASCII text is RFC 2047 encoded here, so nothing is written unencoded, and user
# text has had its control characters taken out (`clean`), so nothing can start a header of its own.
# Headers stay unfolded (far below SMTP's 998; render caps names): folding a quoted display name is legal, but a
# careless reader of the folded form could take an address in the name for a second recipient.
WIRE = email.policy.compat32.clone(linesep="\r\n", max_line_length=998)


def _text(value: str) -> Header | str:
    return value if value.isascii() else Header(value, "utf-8")


def _multipart(subtype: str, parts: list[MIMEBase]) -> MIMEMultipart:
    # A random boundary given here spares the generator its search of the whole body for a collision.
    return MIMEMultipart(subtype, boundary=f"=_{uuid.uuid4().hex}", _subparts=parts, policy=WIRE)


def compose(mail: Mail, sender: str, unsubscribe_url: str | None = None) -> Outgoing:
    body = _multipart("alternative", [MIMEText(render(mail, "text", unsubscribe_url), "plain", "utf-8", policy=WIRE),
                                      MIMEText(render(mail, "html", unsubscribe_url), "html", "utf-8", policy=WIRE)])
    if mail.ics and mail.event:
        ics = MIMEBase("text", "calendar", policy=WIRE, method=mail.ics.value, charset="utf-8")
        ics.set_payload(invitation(mail, parseaddr(sender)[1]))
        encode_base64(ics)
        ics.add_header("Content-Disposition", "attachment", filename="invitasjon.ics")
        body = _multipart("mixed", [body, ics])
    from_name, from_addr = parseaddr(sender)
    # A display name is quoted (ASCII) or one encoded word: several encoded words in a phrase are read back with
    # spaces inserted between them by some parsers (CPython's among them).
    body["From"] = formataddr((from_name, from_addr), charset="utf-8")
    body["To"] = formataddr((clean(mail.name)[:HEADER_NAME_MAX], mail.recipient), charset="utf-8")
    body["Subject"] = _text(clean(render(mail, "subject", unsubscribe_url)))
    body["Date"] = rfc2822_date(datetime.now(UTC))
    body["Message-ID"] = make_msgid(domain=ICS_DOMAIN)
    body["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        body["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        body["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return Outgoing(from_addr, [mail.recipient], body.as_bytes(policy=WIRE))
