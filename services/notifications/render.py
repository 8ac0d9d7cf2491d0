"""A planned mail becomes an RFC 5322 message: Jinja2 templates per kind and language (HTML autoescaped), dates
in Norwegian style in the event's timezone (Babel), an iCalendar invitation, and headers user text cannot break."""

import email.policy
from datetime import UTC, datetime
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime as rfc2822_date, make_msgid, parseaddr
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


class _HeaderClasses(HeaderRegistry):
    """The standard registry builds a new class for every header it parses; build each kind once."""

    def __init__(self):
        super().__init__()
        self.built: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if (cls := self.built.get(name.lower())) is None:
            cls = self.built[name.lower()] = super().__getitem__(name)
        return cls


POLICY = email.policy.default.clone(header_factory=_HeaderClasses())


def compose(mail: Mail, sender: str, unsubscribe_url: str | None = None) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message["From"] = sender
    # headerregistry encodes the display name; control characters were already taken out of it.
    message["To"] = Address(display_name=clean(mail.name)[:HEADER_NAME_MAX], addr_spec=mail.recipient)
    message["Subject"] = clean(render(mail, "subject", unsubscribe_url))
    message["Date"] = rfc2822_date(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=ICS_DOMAIN)
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(render(mail, "text", unsubscribe_url))
    message.add_alternative(render(mail, "html", unsubscribe_url), subtype="html")
    if mail.ics and mail.event:
        message.add_attachment(invitation(mail, parseaddr(sender)[1]),
                               maintype="text", subtype="calendar", filename="invitasjon.ics",
                               params={"method": mail.ics.value})
    return message

