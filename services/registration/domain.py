"""Registration rules: pure functions over plain values and store documents, no I/O."""

import csv
import hashlib
import hmac
import io
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import icalendar
from babel.dates import format_datetime

from shared.messages import Language
from shared.messages.registration import EventInfo, RegistrationStatus, calendar_uid


class Status(StrEnum):
    """A registration's state in the store: the public statuses plus two short-lived steps of a flow, so that a
    flow cut short by a crash can be finished by the reconciler."""

    pending_confirmation = RegistrationStatus.pending_confirmation.value
    confirmed = RegistrationStatus.confirmed.value
    waitlisted = RegistrationStatus.waitlisted.value
    cancelled = RegistrationStatus.cancelled.value
    checked_in = RegistrationStatus.checked_in.value
    erased = "erased"  # personal data removed; kept only for anonymous counts
    allocating = "allocating"  # stored, a seat or waiting-list place being taken
    cancelling = "cancelling"  # marked cancelled, its seat or place being given back
    erasing = "erasing"  # marked for erasure, its seat or place being given back


ACTIVE = (Status.confirmed, Status.waitlisted, Status.checked_in)
# What a participant may still change (answers); a cancelled registration is kept as it was, read-only.
CHANGEABLE = (*ACTIVE, Status.pending_confirmation, Status.allocating)

# A registration's state machine, the one table of it: each status with the statuses it may be reached from. A
# registration starts `allocating` (or `pending_confirmation` under double opt-in) and moves only along these; the
# store's status writes take them from here (moves_to).
MOVES: dict[Status, frozenset[Status]] = {
    Status.allocating: frozenset({Status.pending_confirmation}),  # its address confirmed
    Status.confirmed: frozenset({Status.allocating, Status.waitlisted}),  # a seat taken, or promoted to one
    Status.waitlisted: frozenset({Status.allocating}),  # a place on the waiting list taken
    Status.checked_in: frozenset({Status.confirmed}),
    Status.cancelling: frozenset({Status.pending_confirmation, Status.confirmed, Status.waitlisted}),
    Status.cancelled: frozenset({Status.cancelling}),
    Status.erasing: frozenset(set(Status) - {Status.erased}),  # erasing again finishes a cut-short erasure
    Status.erased: frozenset({Status.erasing}),
}


def moves_to(status: Status, only_from: tuple[Status, ...] | None = None) -> list[str]:
    """The statuses a registration may move to `status` from (of `only_from`, when a flow moves it only from
    where it read it). A move the table does not have is a bug in the flow, not a race: it raises."""
    if only_from is not None and not set(only_from) <= MOVES[status]:
        raise ValueError(f"no move to {status} from {set(only_from) - MOVES[status]}")
    return sorted(only_from or MOVES[status])


class EventStatus(StrEnum):
    draft = "draft"  # being prepared: not listed, no registrations
    published = "published"
    cancelled = "cancelled"


class OrganisationType(StrEnum):
    kommune = "kommune"
    fylkeskommune = "fylkeskommune"
    statleg_verksemd = "statleg verksemd"
    privat_verksemd = "privat verksemd"
    frivillig_organisasjon = "frivillig organisasjon"
    sosial_entreprenor = "sosial entreprenør"
    akademia = "akademia"
    anna = "anna"


class QuestionKind(StrEnum):
    text = "text"
    single_choice = "single_choice"
    multiple_choice = "multiple_choice"


# The documents of the service's collections as the use cases and rules see them: domain ids, datetimes and
# enumerations. How each is stored (and what the stand-in store needs for it) is store.py's business (to_doc,
# from_doc there). Frozen: an event read is shared by the requests of one instance for a moment (service.RECENT).


@dataclass(frozen=True)
class Event:
    """A møteplass (collection `events`), with who holds a seat and who waits, in arrival order."""

    slug: str
    title: str
    description: str
    kind: str
    organisers: list[str]
    status: EventStatus
    starts_at: datetime
    ends_at: datetime
    venue: str
    capacity: int
    language: Language
    timezone: str
    waitlist_enabled: bool
    require_email_confirmation: bool
    questions: list[dict]
    retention_days: int  # personal data is purged this many days after the end
    address: str = ""
    registration_opens_at: datetime | None = None
    registration_closes_at: datetime | None = None
    guests_per_municipality: int = 0
    sequence: int = 0  # bumped on every change of time or place (the calendar entries' SEQUENCE)
    created_at: datetime | None = None
    created_by: str | None = None
    updated_by: str | None = None
    published_by: str | None = None
    cancelled_by: str | None = None
    seats: list[str] = field(default_factory=list)  # registration ids
    waitlist: list[str] = field(default_factory=list)  # registration ids, first in line first
    personal_data: str = "kept"  # kept, purging (the retention purge begun), purged
    final_counts: dict[str, int] | None = None  # registrations per status, kept by the purge
    # What the store knows this read by, so that a write can be made on the event unchanged since (compare-and-set).
    # Opaque outside the store.
    revision: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Registration:
    """A person's registration for a møteplass (collection `registrations`). Erased, it keeps no personal data:
    the personal fields are None (answers empty) and the email is erased_email(id)."""

    id: str
    event_slug: str
    status: Status
    email: str
    language: Language
    created_at: datetime
    name: str | None = None
    phone: str | None = None
    organisation: str | None = None
    organisation_type: OrganisationType | None = None
    municipality: dict | None = None  # {"number": "3201", "name": "Bærum"}
    answers: dict = field(default_factory=dict)  # by question id
    consent: dict | None = None  # {"at": datetime, "privacy_version": "2026-01"}
    token_hashes: list[str] = field(default_factory=list)  # of the personal links' tokens
    guest_of: str | None = None  # the registration id of the inviter
    position: int | None = None  # on the waiting list, when last told
    expires_at: datetime | None = None  # of the double opt-in link, while pending confirmation
    cancel_reason: str | None = None
    cancelled_from: Status | None = None
    cancelled_by: str | None = None
    checked_in_by: str | None = None
    erase_reason: str | None = None
    erased_by: str | None = None


@dataclass(frozen=True)
class GuestInvite:
    """A guest's single-use invitation (collection `guest_invites`), counted against its municipality's quota."""

    event_slug: str
    municipality: str  # its number
    municipality_name: str
    inviter_id: str
    guest_email: str
    code_hash: str
    created_at: datetime
    used_by: str | None = None  # the registration that claimed the code


@dataclass(frozen=True)
class RequestRecord:
    """A request made under an Idempotency-Key (collection `idempotent_requests`): what it was, and once it is
    done, the response to replay."""

    fingerprint: str
    response: dict | None = None  # None while in flight


class Refused(Exception):
    """A rule says no; the message is for the participant (Norwegian), details name the fields."""

    def __init__(self, message: str, status: int = 409, details: list[dict] | None = None):
        super().__init__(message)
        self.message, self.status, self.details = message, status, details


def invalid(problems: list[dict]) -> None:
    if problems:
        raise Refused("Nokre felt er ikkje rett utfylte.", 422, problems)


PERSONAL_FIELDS = ("name", "phone", "organisation", "municipality", "answers", "consent", "token_hashes")


def new_registration_id() -> str:
    # Time first, so that ids sort in arrival order (cursor paging); the random part keeps them unguessable.
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def created_at(registration_id: str) -> datetime:
    """When a registration id was made (its time part, see new_registration_id)."""
    return datetime.fromtimestamp(int(registration_id[:12], 16) / 1000, UTC)


def erased_email(registration_id: str) -> str:
    # What stands in an erased registration's email (the address is not kept); unique per registration.
    return f"erased-{registration_id}"


def retention_over(event: Event, now: datetime) -> bool:
    return now >= event.ends_at + timedelta(days=event.retention_days)


def own_data(registration: Registration, event: Event) -> dict:
    """Everything stored about a person, for them to download."""
    return {"registration_id": registration.id, "event": {"slug": event.slug, "title": event.title},
            "status": registration.status, "email": registration.email, "created_at": registration.created_at,
            "organisation_type": registration.organisation_type,
            **{k: getattr(registration, k) for k in PERSONAL_FIELDS if k != "token_hashes"}}


CSV_COLUMNS = ["Namn", "E-post", "Telefon", "Organisasjon", "Organisasjonstype", "Kommunenummer", "Kommune",
               "Status", "Plass på venteliste", "Påmeld"]


def registrations_csv(event: Event, registrations: list[Registration]) -> str:
    """CSV for Excel: UTF-8 with BOM (so æøå show right), Norwegian headers, one column per question."""
    questions = event.questions
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, delimiter=";")
    writer.writerow(CSV_COLUMNS + [q["text"] for q in questions])
    placed = placements(event, (r.id for r in registrations))
    for r in registrations:
        municipality = r.municipality or {}
        answers = r.answers or {}
        _, position = placed.get(r.id, (None, None))
        writer.writerow([_cell(v) for v in [
            r.name or "", r.email, r.phone or "", r.organisation or "", r.organisation_type or "",
            municipality.get("number", ""), municipality.get("name", ""), r.status, position or "",
            local_time(r.created_at, event.timezone),
            *[_answer_text(answers.get(q["id"], "")) for q in questions]]])
    return out.getvalue()


def _folded(text: str) -> str:
    # Case and accents aside (é is e), so that the door finds "Rene" as "René"; æ, ø and å stay letters of their own.
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def name_matches(name: str, query: str) -> bool:
    """At the door: every word typed starts a word of the name ("kar nor" finds Kari Nordmann)."""
    words = _folded(name).split()
    return all(any(word.startswith(part) for word in words) for part in _folded(query).split())


def _answer_text(answer: str | list[str]) -> str:
    return ", ".join(answer) if isinstance(answer, list) else answer


def _cell(value) -> str:
    # A cell starting like a formula would be run by Excel: participants' text must stay text.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def replay(prior: RequestRecord, fingerprint: str) -> dict:
    """What to answer a request whose Idempotency-Key was seen before: the first response, if the request is the
    same and finished; otherwise a refusal."""
    if prior.fingerprint != fingerprint:
        raise Refused("Idempotency-Key er alt brukt til ein annan førespurnad.", 422,
                      [{"field": "Idempotency-Key", "message": "Bruk ein ny nøkkel for eit nytt innhald."}])
    if prior.response is None:
        raise Refused("Den første førespurnaden med denne Idempotency-Key er ikkje ferdig enno. Prøv igjen om litt.")
    return prior.response


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def normalise_email(email: str) -> str:
    # One person, one registration: addresses differing only in case are the same mailbox in practice.
    return email.strip().lower()


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(stored_hash: str | None, token: str | None) -> bool:
    return bool(stored_hash and token) and hmac.compare_digest(stored_hash, hash_token(token))


def local_time(moment: datetime, timezone: str, language: str = "nn") -> str:
    pattern = "d MMMM y 'at' HH:mm" if language == "en" else "d. MMMM y 'kl.' HH:mm"
    return format_datetime(moment, pattern, tzinfo=ZoneInfo(timezone), locale={"en": "en_GB"}.get(language, language))


def local_span(starts: datetime, ends: datetime, timezone: str, language: str = "nn") -> str:
    """'3. desember 2026 kl. 10:00–15:00'; with both dates when it runs over more than one day."""
    zone = ZoneInfo(timezone)
    if starts.astimezone(zone).date() == ends.astimezone(zone).date():
        return f"{local_time(starts, timezone, language)}–{ends.astimezone(zone):%H:%M}"
    return f"{local_time(starts, timezone, language)} – {local_time(ends, timezone, language)}"


EVENT_NOT_FOUND = "Fann ikkje møteplassen."


def check_public(event: Event) -> None:
    """A draft is there for admins only: to anyone else it does not exist yet."""
    if event.status == EventStatus.draft:
        raise Refused(EVENT_NOT_FOUND, 404)


def check_changeable(registration: Registration) -> None:
    if registration.status not in CHANGEABLE:
        raise Refused("Påmeldinga er avmeld og kan ikkje endrast. Meld deg på på nytt om du vil kome likevel.")


def check_window(event: Event, now: datetime) -> None:
    """Registration is open between registration_opens_at and registration_closes_at, and never after the start."""
    opens, closes = event.registration_opens_at, event.registration_closes_at
    if event.status == EventStatus.cancelled:
        raise Refused("Møteplassen er avlyst.")
    if event.status == EventStatus.draft:
        raise Refused("Påmeldinga er ikkje opna enno.")
    if opens and now < opens:
        raise Refused(f"Påmeldinga opnar {local_time(opens, event.timezone)}.")
    if (closes and now >= closes) or now >= event.starts_at:
        raise Refused("Påmeldinga er stengd.")


def schedule_problems(starts_at: datetime, ends_at: datetime, opens: datetime | None,
                      closes: datetime | None) -> list[dict]:
    """Per-field problems with a møteplass's times (for a 422)."""
    problems = []
    if ends_at <= starts_at:
        problems.append({"field": "ends_at", "message": "Slutten må vere etter starten."})
    if closes and closes > starts_at:
        problems.append({"field": "registration_closes_at",
                         "message": "Påmeldinga må stengje før møteplassen startar."})
    if opens and closes and closes <= opens:
        problems.append({"field": "registration_closes_at", "message": "Påmeldinga må stengje etter at ho opnar."})
    return problems


def answer_problems(questions: list[dict], answers: dict) -> list[dict]:
    """Per-field problems of answers against the møteplass's questions (for a 422)."""
    by_id = {q["id"]: q for q in questions}
    problems = [{"field": f"answers.{key}", "message": "Møteplassen har ikkje dette spørsmålet."}
                for key in answers if key not in by_id]
    for qid, question in by_id.items():
        answer, field = answers.get(qid), f"answers.{qid}"
        if answer in (None, "", []):
            if question["required"]:
                problems.append({"field": field, "message": "Spørsmålet må svarast på."})
            continue
        if question["kind"] == QuestionKind.multiple_choice:
            chosen = answer if isinstance(answer, list) else None
        else:
            chosen = [answer] if isinstance(answer, str) else None
        if chosen is None:
            problems.append({"field": field, "message": "Svaret må vere "
                             + ("ei liste med val." if question["kind"] == QuestionKind.multiple_choice else "tekst.")})
        elif question["kind"] != QuestionKind.text and not set(chosen) <= set(question["options"]):
            problems.append({"field": field, "message": "Vel mellom alternativa: " + ", ".join(question["options"])})
    return problems


def check_can_invite(registration: Registration, event: Event, guest_email: str) -> None:
    """A confirmed participant from a municipality may invite a guest from outside it."""
    if registration.status not in (Status.confirmed, Status.checked_in):
        raise Refused("Berre deltakarar med stadfesta plass kan invitere ein gjest.")
    if not registration.municipality:
        raise Refused("Berre deltakarar frå ein kommune kan invitere ein gjest.")
    if event.guests_per_municipality < 1:
        raise Refused("Denne møteplassen tek ikkje imot gjester.")
    if guest_email == registration.email:
        raise Refused("Gjesten må vere ein annan enn deg.", 422,
                      [{"field": "email", "message": "Skriv e-postadressa til gjesten."}])


def check_guest(invite: GuestInvite | None, slug: str, email: str, municipality: dict | None) -> None:
    """An invite code is bound to its event and to the guest's email, and brings someone from outside."""
    if invite is None or invite.event_slug != slug:
        raise Refused("Invitasjonskoden er ikkje gyldig.", 422,
                      [{"field": "invite_code", "message": "Invitasjonskoden er ikkje gyldig."}])
    if invite.guest_email != email:
        raise Refused("Invitasjonen gjeld ei anna e-postadresse.", 422,
                      [{"field": "email", "message": "Bruk e-postadressa invitasjonen vart send til."}])
    if municipality and municipality["number"] == invite.municipality:
        raise Refused(f"Gjesten må kome frå utanfor {invite.municipality_name}: kommunen kan melde på sine "
                      "eigne tilsette direkte.")


def seats_left(event: Event) -> int:
    return max(0, event.capacity - len(event.seats))


def placements(event: Event, registration_ids: Iterable[str]) -> dict[str, tuple[Status, int | None]]:
    """Where each of these registrations that holds a place stands in the event document: (confirmed, None) or
    (waitlisted, position). One pass over each list for all of them: a popular møteplass's waiting list runs to
    thousands, and a batch's every registration is looked up."""
    wanted = set(registration_ids)
    seated = wanted.intersection(event.seats)
    waiting = wanted.intersection(event.waitlist)
    return {**{rid: (Status.waitlisted, event.waitlist.index(rid) + 1) for rid in waiting},
            **dict.fromkeys(seated, (Status.confirmed, None))}


def allocation(free: int, arrivals: int, waitlist_enabled: bool) -> tuple[int, int]:
    """How arrivals, in arrival order, are placed when `free` seats are left: (seats, waiting) — the first
    `seats` get a seat, the next `waiting` join the waiting list in that order, and any after them are refused
    (full, without a waiting list)."""
    seats = min(free, arrivals)
    return seats, arrivals - seats if waitlist_enabled else 0


def batch_landed(event: Event, seated: list[str], waiting: list[str]) -> int | None:
    """Whether a batch's write (seats to `seated`, `waiting` appended to the waiting list, at once) shows in the
    event as read after it: the length of the waiting list up to the batch's last waiter (for batch_placement),
    or None when the write did not land because the event had changed first. Others may change the event between
    the write and the read: a waiter appended after the batch is rare, so it is searched for only then."""
    waitlist = event.waitlist
    if waiting:
        if waitlist[-len(waiting):] == waiting:
            return len(waitlist)
        if waiting[-1] in waitlist:
            return waitlist.index(waiting[-1]) + 1
    if seated or waiting:
        # The ids are new, so any of them placed means the write landed; only the waiters can have moved since
        # (promoted to a seat meanwhile: first in line, they wait for no one).
        placed = set(event.seats) | set(waitlist)
        return (len(waiting) if waiting else len(waitlist)) if placed & {*seated, *waiting} else None
    # Nothing to place (full, no waiting list), so nothing written: the read itself says whether it is still so.
    return len(waitlist) if event.status == EventStatus.published and seats_left(event) == 0 else None


def batch_placement(waitlist_length: int, seats: int, waiting: int, arrivals: int
                    ) -> list[tuple[Status, int | None] | None]:
    """Where each of a batch of arrivals placed by `allocation` stands, given the waiting list's length after the
    batch joined it (its waiters are the last `waiting` on it); None when refused (full)."""
    first = waitlist_length - waiting + 1
    return ([(Status.confirmed, None)] * seats + [(Status.waitlisted, first + i) for i in range(waiting)]
            + [None] * (arrivals - seats - waiting))


def cancel_reason(status: str) -> str:
    return "left_waiting_list" if status == Status.waitlisted else "participant"


def next_in_line(event: Event, now: datetime) -> str | None:
    """Who is promoted now: the first on the waiting list, if a seat is free and the event is still to come."""
    if (event.status == EventStatus.cancelled or now >= event.starts_at or not event.waitlist
            or seats_left(event) == 0):
        return None
    return event.waitlist[0]


def check_capacity(event: Event, capacity: int) -> None:
    if capacity < len(event.seats):
        raise Refused(f"Kapasiteten kan ikkje vere lågare enn talet på stadfeste plassar ({len(event.seats)}).")


NOTICEABLE = ("starts_at", "ends_at", "venue", "address")  # what participants must be told about


def changes(event: Event, update: dict) -> dict:
    """The fields an update really changes."""
    return {k: v for k, v in update.items() if getattr(event, k) != v}


def event_info(event: Event, base_url: str) -> EventInfo:
    return EventInfo(slug=event.slug, title=event.title, starts_at=event.starts_at, ends_at=event.ends_at,
                     venue=event.venue, address=event.address or None, timezone=event.timezone,
                     language=event.language, url=f"{base_url}/events/{event.slug}/register", sequence=event.sequence)


def manage_url(base_url: str, registration_id: str, token: str, action: str = "") -> str:
    """The personal link (the page to manage one's registration, or one of its steps: "/confirm", "/cancel")."""
    return f"{base_url}/registrations/{registration_id}/manage{action}?token={token}"


def invite_url(base_url: str, event_slug: str, code: str, language: str) -> str:
    """A guest's invitation: the møteplass's registration page, the code filled in, in the inviter's language."""
    return f"{base_url}/events/{event_slug}/register?invite={code}&lang={language}"


def calendar(event: Event, registration: Registration) -> bytes:
    """The møteplass as an iCalendar file for the participant's own calendar: the same entry (UID and sequence)
    as the invitation their mails carry, so importing it does not make a second one."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Møteplass//registration//NO")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    entry = icalendar.Event()
    entry.add("uid", calendar_uid(event.slug, registration.id))
    entry.add("dtstamp", datetime.now(UTC))
    entry.add("sequence", event.sequence)
    entry.add("dtstart", event.starts_at.astimezone(UTC))
    entry.add("dtend", event.ends_at.astimezone(UTC))
    entry.add("summary", event.title)
    entry.add("location", ", ".join(filter(None, [event.venue, event.address])))
    entry.add("status", "CANCELLED" if event.status == EventStatus.cancelled else "CONFIRMED")
    cal.add_component(entry)
    return cal.to_ical()
