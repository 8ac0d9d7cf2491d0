"""Mail composition: every template in every language, Norwegian dates, calendar invitations, safe headers."""

from datetime import UTC, datetime, timedelta
import email
import re
from email.policy import default

import icalendar
import pytest

from services.notifications import render
from services.notifications.domain import IcsMethod, Mail, Unsubscribe
from shared import addresses
from shared.messages import Language
from shared.messages.notifications import NotificationKind as Kind
from shared.messages.registration import EventInfo

START = datetime(2027, 3, 4, 9, 0, tzinfo=UTC)  # 10.00 in Oslo
EVENT = EventInfo(slug="jam", title="Innovasjonsjam <i>&</i>", starts_at=START, ends_at=START + timedelta(hours=6),
                  venue="Bærum rådhus", url="https://x/jam", sequence=1)
CONTEXT = {"manage_url": "https://x/m?token=a&b", "position": 4, "confirm_url": "https://x/c", "expires_at": START,
           "inviter_name": "Kari", "municipality": "Bærum", "invite_url": "https://x/i", "changed": ["starts_at"],
           "previous_starts_at": START - timedelta(days=1), "author_name": "Ola <b>", "excerpt": "Takk & helsing",
           "url": "https://x/jam#c2", "moderation_url": "https://x/mod", "comment_count": 2,
           "erase_url": "https://x/erase?token=e", "sign_in_url": "https://x/staff/sign-in/link?token=s"}
SENDER = "Møteplass <moteplass@example.no>"

SUBJECTS = {
    Language.nn: {Kind.confirmed: "Du er påmeld: ", Kind.waitlisted: "Du står på venteliste: ",
                  Kind.promoted: "Du har fått plass: ", Kind.cancelled: "Avmeldinga di er registrert: ",
                  Kind.confirm_email: "Stadfest e-postadressa di: ", Kind.guest_invite: "Kari inviterer deg til ",
                  Kind.event_updated: "Endra tid eller stad: ", Kind.event_cancelled: "Avlyst: ",
                  Kind.reminder: "Påminning: ", Kind.comment_submitted: "Ny kommentar ventar på godkjenning",
                  Kind.comment_published: "Ola <b> har svart på kommentaren din",
                  Kind.comment_erasure: "Slett kommentarane dine", Kind.staff_sign_in: "Logg inn på Møteplass"},
    Language.nb: {Kind.confirmed: "Du er påmeldt: ", Kind.cancelled: "Avmeldingen din er registrert: ",
                  Kind.confirm_email: "Bekreft e-postadressen din: ", Kind.event_updated: "Endret tid eller sted: ",
                  Kind.reminder: "Påminnelse: ", Kind.comment_submitted: "Ny kommentar venter på godkjenning"},
    Language.en: {Kind.comment_erasure: "Erase your comments", Kind.confirmed: "You're registered: ", Kind.waitlisted: "You're on the waiting list: ",
                  Kind.event_cancelled: "Cancelled: ", Kind.comment_published: "Ola <b> replied to your comment"},
}


def composed(mail: Mail, sender: str, unsubscribe_url: str | None = None) -> email.message.EmailMessage:
    """The mail as the SMTP server receives it, read back."""
    outgoing = render.compose(mail, sender, "m1", unsubscribe_url)
    assert outgoing.sender == "moteplass@example.no" and outgoing.recipients == [addresses.on_the_wire(mail.recipient)]
    return email.message_from_bytes(outgoing.data, policy=default)


def mail(kind: Kind, language: Language = Language.nn, **changes) -> Mail:
    fields = {"kind": kind, "recipient": "kari@example.no", "name": "Kari Nordmann", "language": language,
              "context": CONTEXT, "event": EVENT, "registration_id": "r1", **changes}
    return Mail(**fields)


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_renders_in_every_language_with_text_and_escaped_html(kind, language):
    message = composed(mail(kind, language), SENDER)
    subject = message["Subject"]
    if expected := SUBJECTS[language].get(kind):
        assert subject.startswith(expected)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Kari Nordmann" in text and f'<html lang="{language.value}">' in html
    assert "<i>&</i>" not in html and "<b>" not in html.replace("<br>", "")  # user text is escaped
    if kind not in (Kind.comment_submitted, Kind.comment_published, Kind.comment_erasure, Kind.staff_sign_in):
        assert "Innovasjonsjam <i>&</i>" in text and "Innovasjonsjam &lt;i&gt;&amp;&lt;/i&gt;" in html


@pytest.mark.parametrize(("language", "expected"), [
    (Language.nn, "torsdag 4. mars 2027 kl. 10.00–16.00"),
    (Language.nb, "torsdag 4. mars 2027 kl. 10.00–16.00"),
    (Language.en, "Thursday 4 March 2027, 10:00–16:00"),
])
def test_times_are_written_in_the_events_timezone_in_the_languages_style(language, expected):
    assert render.when(EVENT, language) == expected


def test_an_event_over_several_days_names_both_days():
    long = EVENT.model_copy(update={"ends_at": START + timedelta(days=1)})
    assert render.when(long, Language.nn) == "torsdag 4. mars 2027 kl. 10.00 – fredag 5. mars 2027 kl. 10.00"


def calendar(message) -> icalendar.Calendar:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    return icalendar.Calendar.from_ical(part.get_payload(decode=True))


def test_an_update_replaces_the_invitation_with_the_same_uid_and_a_higher_sequence():
    first = calendar(composed(mail(Kind.confirmed, ics=IcsMethod.request), SENDER))
    moved = EVENT.model_copy(update={"sequence": 2, "starts_at": START + timedelta(days=7),
                                     "ends_at": START + timedelta(days=7, hours=2)})
    update = calendar(composed(mail(Kind.event_updated, event=moved, ics=IcsMethod.request), SENDER))
    cancel = calendar(composed(mail(Kind.event_cancelled, event=moved, ics=IcsMethod.cancel), SENDER))
    [a], [b], [c] = first.walk("VEVENT"), update.walk("VEVENT"), cancel.walk("VEVENT")
    assert str(a["UID"]) == str(b["UID"]) == str(c["UID"]) == "jam.r1@moteplass.no"
    assert (a["SEQUENCE"], b["SEQUENCE"]) == (1, 2)
    assert b.decoded("DTSTART") == START + timedelta(days=7)
    assert (str(update["METHOD"]), str(cancel["METHOD"]), str(c["STATUS"])) == ("REQUEST", "CANCEL", "CANCELLED")
    assert str(a["ATTENDEE"]) == "mailto:kari@example.no"


@pytest.mark.parametrize("language, label", [(Language.nn, "Kvar"), (Language.nb, "Hvor"), (Language.en, "Where")])
def test_the_venue_address_is_a_line_of_its_own_in_the_mail_and_in_the_invitation(language, label):
    at = EVENT.model_copy(update={"address": "Arnold Haukelands plass 10, Sandvika"})
    message = composed(mail(Kind.confirmed, event=at, ics=IcsMethod.request, language=language), SENDER)
    lines = message.get_body(("plain",)).get_content().splitlines()
    assert f"{label}: Bærum rådhus, Arnold Haukelands plass 10, Sandvika" in lines  # not run into the next line
    assert any(line.endswith(": https://x/jam") for line in lines)
    [entry] = calendar(message).walk("VEVENT")
    assert str(entry["LOCATION"]) == "Bærum rådhus, Arnold Haukelands plass 10, Sandvika"


def test_mail_about_no_event_gives_times_in_norwegian_time():
    erasure = mail(Kind.comment_erasure, event=None, registration_id=None,
                   context={"comment_count": 1, "erase_url": "https://x/e", "expires_at": START})
    text = composed(erasure, SENDER).get_body(("plain",)).get_content()
    assert "slette kommentaren som" in text and "Lenkja gjeld til torsdag 4. mars 2027 kl. 10.00" in text


def test_mails_without_invitation_carry_no_calendar():
    message = composed(mail(Kind.waitlisted), SENDER)
    assert not [p for p in message.walk() if p.get_content_type() == "text/calendar"]


def test_only_unsubscribable_mail_has_the_one_click_headers_and_link():
    reminder = composed(mail(Kind.reminder, unsubscribe_topic=Unsubscribe.reminder), SENDER,
                              unsubscribe_url="https://n/unsubscribe?token=t")
    assert reminder["List-Unsubscribe"] == "<https://n/unsubscribe?token=t>"
    assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://n/unsubscribe?token=t" in reminder.get_body(("plain",)).get_content()
    confirmed = composed(mail(Kind.confirmed), SENDER)
    assert confirmed["List-Unsubscribe"] is None


def test_a_name_cannot_add_headers_or_recipients_even_once_written_for_the_wire():
    name = "Kari\r\nBcc: deltakar-3d7298cfea@example.no\r\nSubject: Vinn!<script>alert(1)</script>"
    message = composed(mail(Kind.confirmed, name=name), SENDER)
    assert message["Bcc"] is None
    # A long display name holding an address is where the standard library's refolding used to go wrong.
    assert [a.addr_spec for a in message["To"].addresses] == ["kari@example.no"]
    assert message["Subject"].startswith("Du er påmeld")


@pytest.mark.parametrize("name", ["Åse Ødegård, «Bergen» <ase@example.no>", "Kari \"K\" Nordmann (leiar), Bærum " * 2,
                                  "Ola Nordmann, Bergen kommune <ola@example.no>; per@example.no " * 2])
def test_names_with_letters_quotes_and_addresses_stay_one_display_name(name):
    message = composed(mail(Kind.confirmed, name=name), SENDER)
    [to] = message["To"].addresses
    assert to.addr_spec == "kari@example.no" and to.display_name == name.strip()[:render.HEADER_NAME_MAX]
    assert message["From"].addresses[0].display_name == "Møteplass"


def test_attendees_of_one_møteplass_share_its_invitation_lines_but_get_their_own_uid_and_attendee():
    kari = calendar(composed(mail(Kind.confirmed, ics=IcsMethod.request), SENDER)).walk("VEVENT")[0]
    ola = calendar(composed(mail(Kind.confirmed, ics=IcsMethod.request, recipient="ola@example.no", name="Ola",
                                 registration_id="r2"), SENDER)).walk("VEVENT")[0]
    assert (str(kari["UID"]), str(ola["UID"])) == ("jam.r1@moteplass.no", "jam.r2@moteplass.no")
    assert (str(kari["ATTENDEE"]), str(ola["ATTENDEE"])) == ("mailto:kari@example.no", "mailto:ola@example.no")
    assert ola["ATTENDEE"].params["CN"] == "Ola"
    assert [str(e["SUMMARY"]) for e in (kari, ola)] == ["Innovasjonsjam <i>&</i>"] * 2
    moved = calendar(composed(mail(Kind.event_updated, ics=IcsMethod.request, registration_id="r2",
                                   event=EVENT.model_copy(update={"venue": "Sandvika", "sequence": 2})), SENDER))
    assert str(moved.walk("VEVENT")[0]["LOCATION"]) == "Sandvika"  # a new version of the møteplass is written anew


def test_the_message_id_is_the_same_for_every_attempt_at_one_mail_and_differs_between_mails():
    def message_id(message: str, kind: Kind = Kind.confirmed, recipient: str = "kari@example.no") -> str:
        return render.compose(mail(kind, recipient=recipient), SENDER, message).data.decode().split(
            "Message-ID: ", 1)[1].split("\r\n", 1)[0]

    first = message_id("m1")
    assert first == message_id("m1") and re.fullmatch(r"<[0-9a-f]{64}@example\.no>", first)
    assert len({first, message_id("m2"), message_id("m1", Kind.waitlisted), message_id("m1", recipient="o@x.no")}) == 4


def test_an_idn_domain_goes_out_idna_encoded_in_the_envelope_and_the_headers():
    outgoing = render.compose(mail(Kind.confirmed, recipient="kari@bærum.no"), SENDER, "m1")
    assert outgoing.recipients == ["kari@xn--brum-voa.no"] and not outgoing.smtputf8
    message = email.message_from_bytes(outgoing.data, policy=default)
    assert [a.addr_spec for a in message["To"].addresses] == ["kari@xn--brum-voa.no"]
    outgoing.data.decode("ascii")  # nothing but ASCII on the wire


def test_a_non_ascii_local_part_needs_smtputf8_and_is_written_in_utf8_headers():
    outgoing = render.compose(mail(Kind.confirmed, recipient="ærlig@bærum.no", name="Ærlig Åse"), SENDER, "m1")
    assert outgoing.recipients == ["ærlig@xn--brum-voa.no"] and outgoing.smtputf8
    message = email.message_from_string(outgoing.data.decode("utf-8"), policy=default)  # RFC 6532: UTF-8 headers
    [to] = message["To"].addresses
    assert (to.addr_spec, to.display_name) == ("ærlig@xn--brum-voa.no", "Ærlig Åse")
    assert message["Subject"].startswith("Du er påmeld")
