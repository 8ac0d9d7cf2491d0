"""The notification rules, without I/O."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notifications import domain
from services.notifications.domain import IcsMethod, Unsubscribe
from shared.messages import Language
from shared.messages.comments import (
    CommentErasureRequested, CommentPublished, CommentRejected, CommentSubmitted, ModeratorSignInRequested, ParentComment,
)
from shared.messages.notifications import NotificationKind as Kind
from shared.messages.registration import (
    EventInfo, EventPublished, GuestInvited, RegistrationCancelled, RegistrationCheckedIn, RegistrationConfirmed,
    RegistrationPending, RegistrationPromoted, RegistrationStatus, RegistrationWaitlisted, StaffSignInRequested,
)

START = datetime(2027, 3, 4, 9, 0, tzinfo=UTC)
EVENT = EventInfo(slug="jam", title="Innovasjonsjam", starts_at=START, ends_at=START + timedelta(hours=6),
                  venue="Bærum rådhus")
PERSON = {"event": EVENT, "registration_id": "r1", "name": "Kari", "email": "kari@example.no", "language": "nb",
          "manage_url": "https://x/m?token=t"}


@pytest.mark.parametrize(("payload", "kind", "ics"), [
    (RegistrationConfirmed(**PERSON, status="confirmed"), Kind.confirmed, IcsMethod.request),
    (RegistrationPromoted(**PERSON, status="confirmed"), Kind.promoted, IcsMethod.request),
    (RegistrationWaitlisted(**PERSON, status="waitlisted", position=2), Kind.waitlisted, None),
    (RegistrationCancelled(**PERSON, status="cancelled"), Kind.cancelled, IcsMethod.cancel),
    (RegistrationCancelled(**PERSON, status="cancelled", reason="left_waiting_list"), Kind.cancelled, None),
    (RegistrationCancelled(**PERSON, status="cancelled", reason="event_cancelled"), Kind.event_cancelled,
     IcsMethod.cancel),
    (RegistrationPending(**PERSON, status="pending_confirmation", confirm_url="https://x/c",
                         expires_at=START), Kind.confirm_email, None),
])
def test_each_registration_message_is_one_mail_to_the_person_in_their_language(payload, kind, ics):
    [mail] = domain.plan(payload)
    assert (mail.kind, mail.recipient, mail.language, mail.ics) == (kind, "kari@example.no", Language.nb, ics)
    assert mail.registration_id == "r1" and mail.event_slug == "jam"
    assert mail.context["manage_url"] == "https://x/m?token=t"
    assert mail.unsubscribe_topic is None  # transactional: cannot be turned off


@pytest.mark.parametrize("reason", ["event_cancelled", "participant", "admin"])
@pytest.mark.parametrize(("previous_status", "ics"), [
    ("confirmed", IcsMethod.cancel),
    ("checked_in", IcsMethod.cancel),
    ("waitlisted", None),
    ("pending_confirmation", None),
    (None, IcsMethod.cancel),  # an older producer that does not say: as before
])
def test_a_cancellation_withdraws_a_calendar_entry_only_from_those_who_held_a_seat(reason, previous_status, ics):
    [mail] = domain.plan(RegistrationCancelled(**PERSON, status="cancelled", reason=reason,
                                               previous_status=previous_status))
    assert mail.kind == (Kind.event_cancelled if reason == "event_cancelled" else Kind.cancelled)
    assert (mail.recipient, mail.ics) == ("kari@example.no", ics)


def test_messages_that_tell_no_one_plan_no_mail():
    assert domain.plan(RegistrationCheckedIn(**PERSON, status="checked_in")) == []
    assert domain.plan(EventPublished(event=EVENT)) == []


def test_a_guest_invite_goes_to_the_guest():
    [mail] = domain.plan(GuestInvited(event=EVENT, registration_id="r1", inviter_name="Kari", municipality="Bærum",
                                      guest_email="gjest@example.no", language="en", invite_url="https://x/i"))
    assert (mail.kind, mail.recipient, mail.language) == (Kind.guest_invite, "gjest@example.no", Language.en)
    assert mail.context["inviter_name"] == "Kari" and mail.context["invite_url"] == "https://x/i"


COMMENT = {"thread_id": "jam", "comment_id": "c2", "author_name": "Ola", "excerpt": "Godt poeng!",
           "url": "https://x/jam#c2"}


def test_a_submitted_comment_goes_to_each_moderator_once():
    mails = domain.plan(CommentSubmitted(**COMMENT, status="pending", moderation_url="https://x/mod",
                                         moderator_emails=["a@example.no", "b@example.no", "a@example.no"]))
    assert [(m.kind, m.recipient) for m in mails] == [(Kind.comment_submitted, "a@example.no"),
                                                      (Kind.comment_submitted, "b@example.no")]
    assert mails[0].context["moderation_url"] == "https://x/mod"


def test_a_published_reply_goes_to_the_parent_author_only_when_they_opted_in():
    opted_in = ParentComment(comment_id="c1", author_name="Kari", language="nn", email="kari@example.no",
                             unsubscribe_url="https://x/u")
    [mail] = domain.plan(CommentPublished(**COMMENT, status="approved", parent=opted_in))
    assert (mail.kind, mail.recipient, mail.name, mail.unsubscribe_url) == (
        Kind.comment_published, "kari@example.no", "Kari", "https://x/u")
    silent = ParentComment(comment_id="c1", author_name="Kari")
    assert domain.plan(CommentPublished(**COMMENT, status="approved", parent=silent)) == []
    assert domain.plan(CommentPublished(**COMMENT, status="approved")) == []
    assert domain.plan(CommentRejected(**COMMENT, status="rejected")) == []


def test_an_erasure_request_mails_the_signed_link_to_the_address():
    [mail] = domain.plan(CommentErasureRequested(email="ola@example.no", language="en", comment_count=3,
                                                 erase_url="https://x/e?token=t", expires_at=START))
    assert (mail.kind, mail.recipient, mail.language, mail.event) == (Kind.comment_erasure, "ola@example.no",
                                                                      Language.en, None)
    assert mail.context == {"comment_count": 3, "erase_url": "https://x/e?token=t", "expires_at": START}


@pytest.mark.parametrize("message", [StaffSignInRequested, ModeratorSignInRequested])
def test_a_sign_in_request_mails_the_single_use_link_to_the_listed_address(message):
    [mail] = domain.plan(message(email="mod@example.no", role="moderator", language="nb",
                                 sign_in_url="https://x/staff/sign-in/link?token=t", expires_at=START))
    assert (mail.kind, mail.recipient, mail.language, mail.event) == (Kind.staff_sign_in, "mod@example.no",
                                                                      Language.nb, None)
    assert mail.context == {"sign_in_url": "https://x/staff/sign-in/link?token=t", "expires_at": START}


def test_an_event_update_tells_seat_holders_with_an_invite_and_the_waiting_list_without():
    attendees = [domain.Attendee(reg, EVENT, f"{reg}@example.no", reg, Language.nn, RegistrationStatus(status), None,
                                 START)
                 for reg, status in [("a", "confirmed"), ("b", "waitlisted"), ("c", "cancelled"), ("d", "checked_in")]]
    moved = EVENT.model_copy(update={"sequence": 2})
    mails = domain.plan_event_update(moved, attendees, ["starts_at"], START)
    assert [(m.registration_id, m.ics) for m in mails] == [("a", IcsMethod.request), ("b", None),
                                                           ("d", IcsMethod.request)]
    assert all(m.kind == Kind.event_updated and m.event.sequence == 2 for m in mails)


def test_a_reminder_is_due_hours_before_the_start_unless_that_has_passed():
    assert domain.reminder_due(EVENT, 24, START - timedelta(days=3)) == START - timedelta(hours=24)
    assert domain.reminder_due(EVENT, 24, START - timedelta(hours=23)) is None


def test_a_reminder_can_be_unsubscribed_and_is_keyed_by_registration_and_version():
    reminder = domain.Attendee("r1", EVENT.model_copy(update={"sequence": 3}), "kari@example.no", "Kari", Language.en,
                               RegistrationStatus.confirmed, None, START)
    mail = domain.reminder_mail(reminder)
    assert (mail.kind, mail.unsubscribe_topic, mail.language) == (Kind.reminder, Unsubscribe.reminder, Language.en)
    assert domain.reminder_message_id(reminder) == "reminder:r1:3"


def test_control_characters_never_survive_into_user_text():
    assert domain.clean(" Kari\r\nBcc: x@y.no\x00\u2028Nordmann ") == "Kari Bcc: x@y.no Nordmann"


def test_only_smtp_5xx_refusing_the_mail_is_permanent():
    assert [domain.is_permanent(c) for c in (550, 553, 554, 421, 451, None)] == [True, True, True, False, False, False]
    # Authentication or TLS refused: our settings are wrong, not the mail.
    assert not any(domain.is_permanent(c) for c in (530, 534, 535, 538))


def test_an_unsubscribe_token_reads_back_and_a_forged_one_does_not():
    token = domain.unsubscribe_token("kari@example.no", Unsubscribe.reminder, Language.nb, "s" * 32)
    assert domain.read_unsubscribe_token(token, "s" * 32) == ("kari@example.no", Unsubscribe.reminder, Language.nb)
    with pytest.raises(ValueError):
        domain.read_unsubscribe_token(token, "t" * 32)
    with pytest.raises(ValueError):
        domain.read_unsubscribe_token("not-a-token", "s" * 32)
