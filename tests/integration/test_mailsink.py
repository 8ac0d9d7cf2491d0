"""The dev mail sink keeps what arrives over SMTP and serves it through Mailpit's HTTP API subset."""

from email.message import EmailMessage

import aiohttp
import aiosmtplib
import pytest

from moteplass.mailsink import MailSink
from tests.conftest import free_port
from tests.support.mailbox import Mailbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def sink():
    value = MailSink()
    smtp_port, http_port = free_port(), free_port()
    await value.start("127.0.0.1", smtp_port, http_port)
    yield smtp_port, f"http://127.0.0.1:{http_port}"
    await value.stop()


def invitation(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Møteplass <moteplass@example.no>"
    message["To"] = f"Kari Nordmann <{to}>"
    message["Subject"] = "Du er påmeld: Innovasjonsjam i Bærum"
    message.set_content("Velkomen til Innovasjonsjam!\nAvmeld deg her: http://127.0.0.1:8081/avmelding")
    message.add_alternative("<p>Velkomen til <b>Innovasjonsjam</b>!</p>", subtype="html")
    message.add_attachment(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", maintype="text", subtype="calendar",
                           filename="innovasjonsjam.ics")
    return message


async def test_a_sent_mail_reads_back_through_the_mailpit_api(sink):
    smtp_port, api = sink
    mailbox = Mailbox(api)
    await aiosmtplib.send(invitation("kari@baerum.kommune.no"), hostname="127.0.0.1", port=smtp_port)

    [summary] = await mailbox.messages_to("kari@baerum.kommune.no")
    assert summary["Subject"] == "Du er påmeld: Innovasjonsjam i Bærum"
    assert summary["From"]["Address"] == "moteplass@example.no"
    assert summary["Attachments"] == 1

    [full] = await mailbox.wait_for("kari@baerum.kommune.no", subject_contains="Innovasjonsjam")
    assert "Avmeld deg her: http://127.0.0.1:8081/avmelding" in full["Text"]
    assert "<b>Innovasjonsjam</b>" in full["HTML"]
    [attachment] = full["Attachments"]
    assert attachment["FileName"] == "innovasjonsjam.ics" and attachment["ContentType"] == "text/calendar"

    headers = await mailbox.headers(summary["ID"])
    assert headers["Subject"] == ["Du er påmeld: Innovasjonsjam i Bærum"]
    assert "Innovasjonsjam" in await mailbox.raw(summary["ID"])

    content_type, body = await mailbox.part(summary["ID"], attachment["PartID"])
    assert content_type == "text/calendar" and body.startswith(b"BEGIN:VCALENDAR")
    with pytest.raises(aiohttp.ClientResponseError) as missing:
        await mailbox.message("no-such-id")
    assert missing.value.status == 404


async def test_delete_some_or_all(sink):
    smtp_port, api = sink
    mailbox = Mailbox(api)
    for address in ("a@sarpsborg.kommune.no", "b@fredrikstad.kommune.no"):
        await aiosmtplib.send(invitation(address), hostname="127.0.0.1", port=smtp_port)
    await mailbox.wait_for("b@fredrikstad.kommune.no")

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{api}/api/v1/messages", params={"limit": "alle"}) as resp:
            assert resp.status == 400
        async with session.delete(f"{api}/api/v1/messages", data="[1, 2]") as resp:
            assert resp.status == 400
    [first] = await mailbox.messages_to("a@sarpsborg.kommune.no")
    async with aiohttp.ClientSession() as session:
        async with session.delete(f"{api}/api/v1/messages", json={"IDs": [first["ID"]]}) as resp:
            assert resp.status == 200
    assert await mailbox.messages_to("a@sarpsborg.kommune.no") == []
    assert len(await mailbox.messages_to("b@fredrikstad.kommune.no")) == 1

    await mailbox.delete_all()
    assert await mailbox.messages_to("b@fredrikstad.kommune.no") == []
