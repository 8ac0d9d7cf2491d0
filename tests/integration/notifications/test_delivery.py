"""Issue 5, delivery: exactly one mail per (message, recipient, kind) whatever happens to the SMTP server, the
message or the replicas; permanent refusals recorded and announced; parked messages replayed."""

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
from aiosmtpd.smtp import SMTP

from services.notifications.app import SERVICE, create_app
from services.notifications.consumers import BINDINGS
from services.notifications.store import Store
from shared.bus import Bus
from shared.messages.envelope import overlapping
from shared.messages.notifications import NotificationFailed, NotificationSent
from shared.messages.registration import StaffSignInRequested
from tests.conftest import free_port

from .conftest import address, confirmed, eventually


async def count(records, query: dict, expected: int) -> bool:
    return await records.count_documents(query) == expected


def about(announced: list, recipient: str) -> list:
    return [event for event in announced if event.data.recipient == recipient]


async def test_a_redelivered_message_sends_one_mail_and_announces_it_once(
        settings, start_service, publish, mailbox, records, listen):
    announced = await listen("notification.#")
    await start_service(create_app, "notifications")
    to = address()
    first = await publish(confirmed(to))
    await mailbox.wait_for(to)
    await publish(first)  # the broker delivers the same message again
    sentinel = address()
    await publish(confirmed(sentinel))
    await mailbox.wait_for(sentinel)

    assert len(await mailbox.messages_to(to)) == 1
    record = await records.find_one({"recipient": to})
    assert (record["status"], record["attempts"], record["message_id"]) == ("sent", 1, first.id)
    await eventually(lambda: len(about(announced, to)) == 1 + overlapping(NotificationSent))
    sent = about(announced, to)
    # Once, in v2 and beside it (a kind of mail v1 knows) in v1 during the overlap.
    assert [e.type for e in sent] == ["no.moteplass.notification.sent.v2",
                                      *(["no.moteplass.notification.sent.v1"] if overlapping(NotificationSent) else [])]
    assert all(e.data.notification_id == str(record["_id"]) and e.data.kind == "confirmed" for e in sent)


async def test_a_mail_of_a_kind_v1_never_had_is_announced_in_v2_only(start_service, publish, listen):
    announced = await listen("notification.#")
    await start_service(create_app, "notifications")
    to, sentinel = address(), address()
    await publish(StaffSignInRequested(email=to, role="admin", sign_in_url="http://127.0.0.1:8081/staff/sign-in/x",
                                       expires_at=datetime.now(UTC) + timedelta(minutes=15)))
    await eventually(lambda: about(announced, to))
    await publish(confirmed(sentinel))  # mailed and announced after it (in both versions during the overlap)
    await eventually(lambda: len(about(announced, sentinel)) == 1 + overlapping(NotificationSent))
    assert [(e.type, e.data.kind) for e in about(announced, to)] == [("no.moteplass.notification.sent.v2",
                                                                      "staff_sign_in")]


async def test_two_replicas_on_one_queue_send_each_mail_once(settings, start_service, publish, mailbox, records):
    await start_service(create_app, "notifications")
    await start_service(create_app, "notifications", port=free_port())
    recipients = [address() for _ in range(20)]
    events = [await publish(confirmed(to)) for to in recipients]
    for event in events:  # every message twice: the replicas compete for both copies
        await publish(event)
    for to in recipients:
        await mailbox.wait_for(to)
    await eventually(lambda: count(records, {"status": "sent", "recipient": {"$in": recipients}}, 20))
    counts = [len(await mailbox.messages_to(to)) for to in recipients]
    assert counts == [1] * 20


async def test_mails_wait_for_the_smtp_server_and_arrive_once_when_it_returns(
        settings, start_service, publish, records, smtp_later):
    down = settings.model_copy(update={"smtp_port": smtp_later.port, "max_attempts": 12})
    await start_service(create_app, "notifications", app_settings=down)
    recipients = [address() for _ in range(5)]
    for to in recipients:
        await publish(confirmed(to))
    await eventually(lambda: records.find_one({"attempts": {"$gte": 2}}))  # it tried, and will again

    await smtp_later.start()
    for to in recipients:
        await smtp_later.mailbox.wait_for(to)
    await eventually(lambda: count(records, {"status": "sent"}, 5))
    assert [len(await smtp_later.mailbox.messages_to(to)) for to in recipients] == [1] * 5
    assert all(r["attempts"] >= 2 for r in await records.find({}).to_list())


class Refuses:
    """An SMTP server that knows no mailbox (550)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 No such mailbox here"


async def test_a_permanent_refusal_is_recorded_announced_and_not_retried(
        settings, start_service, publish, records, listen, admin_headers):
    port = free_port()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(Refuses()), "127.0.0.1", port)
    announced = await listen("notification.#")
    try:
        base = await start_service(create_app, "notifications",
                                   app_settings=settings.model_copy(update={"smtp_port": port}))
        to = address()
        await publish(confirmed(to))
        record = await eventually(lambda: records.find_one({"recipient": to, "status": "failed"}))
        assert record["attempts"] == 1 and "550" in record["last_error"]
        failed, *older = await eventually(lambda: len(announced) == 1 + overlapping(NotificationFailed) and announced)
        assert failed.type == "no.moteplass.notification.failed.v2" and "550" in failed.data.error
        beside = ("no.moteplass.notification.failed.v1", failed.data.model_dump(mode="json"))
        assert [(e.type, e.data.model_dump(mode="json")) for e in older] == (
            [beside] if overlapping(NotificationFailed) else [])
        async with aiohttp.ClientSession(headers=admin_headers) as http:
            async with http.get(f"{base}/dead-letters") as resp:
                assert resp.status == 200 and await resp.json() == []
        assert (await records.find_one({"_id": record["_id"]}))["attempts"] == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_a_parked_message_is_listed_and_replayed_over_http(
        settings, start_service, publish, records, smtp_later, admin_headers):
    down = settings.model_copy(update={"smtp_port": smtp_later.port, "max_attempts": 2})
    base = await start_service(create_app, "notifications", app_settings=down)
    to = address()
    event = await publish(confirmed(to))
    async with aiohttp.ClientSession(headers=admin_headers) as http:
        async def parked():
            async with http.get(f"{base}/dead-letters") as resp:
                return await resp.json()

        [item] = await eventually(parked)
        assert item["message_id"] == event.id and item["type"] == event.type and item["attempts"] == 2
        assert "SMTPConnect" in item["error"] or "Connect" in item["error"]

        await smtp_later.start()

        async def replay():
            async with http.post(f"{base}/dead-letters/replay") as resp:
                assert resp.status == 200
                return (await resp.json())["replayed"]

        # Listing holds the messages until its channel closes; the broker may take a moment to put them back.
        assert await eventually(replay) == 1
        await smtp_later.mailbox.wait_for(to)
        assert await parked() == []
    assert (await records.find_one({"recipient": to}))["status"] == "sent"


async def test_a_name_with_crlf_and_html_stays_harmless(settings, start_service, publish, mailbox):
    await start_service(create_app, "notifications")
    to, intruder = address(), address()
    await publish(confirmed(to, name=f"Kari\r\nBcc: {intruder}\r\nSubject: Vinn!<script>alert(1)</script>"))
    [mail] = await mailbox.wait_for(to)
    headers = await mailbox.headers(mail["ID"])
    assert "Bcc" not in headers and headers["Subject"] == ["Du er påmeld: Innovasjonsjam i Bærum"]
    assert [a["Address"] for a in mail["To"]] == [to]
    assert "<script>" not in mail["HTML"] and "&lt;script&gt;alert(1)&lt;/script&gt;" in mail["HTML"]
    assert await mailbox.messages_to(intruder) == []


async def test_the_cli_lists_and_replays_parked_messages(settings, start_service, publish, records, smtp_later):
    from click.testing import CliRunner

    from moteplass.cli import main
    from shared.settings import get_settings

    down = settings.model_copy(update={"smtp_port": smtp_later.port, "max_attempts": 1})
    await start_service(create_app, "notifications", app_settings=down)
    to = address()
    event = await publish(confirmed(to))
    env = {"AMQP_URL": settings.amqp_url, "EXCHANGE": settings.exchange, "QUEUE_PREFIX": settings.queue_prefix}

    async def cli(*args: str) -> str:
        get_settings.cache_clear()  # the command reads its settings from this environment
        try:
            result = await asyncio.to_thread(CliRunner().invoke, main, ["notifications", *args], env=env)
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        return result.output

    listing = await eventually(lambda: _listed(cli, event.id))
    assert "1 parked message(s)" in listing and "attempts=1" in listing
    await smtp_later.start()
    assert "1 message(s) re-queued" in await eventually(lambda: _replayed(cli))
    await smtp_later.mailbox.wait_for(to)
    assert "0 parked message(s)" in await cli("dead")


async def _listed(cli, message_id: str) -> str | None:
    output = await cli("dead")
    return output if message_id in output else None


async def _replayed(cli) -> str | None:
    output = await cli("replay")
    return None if output.startswith("0 ") else output


async def test_a_burst_of_queued_messages_claims_in_batches_and_records_each_mail_at_once(
        settings, start_service, publish, mailbox, records, monkeypatch):
    writes = {"claim": [], "finish": []}
    for name in writes:
        def counting(self, batch_or_record, *args, _name=name, _original=getattr(Store, name)):
            writes[_name].append(len(batch_or_record) if isinstance(batch_or_record, list) else 1)
            return _original(self, batch_or_record, *args)
        monkeypatch.setattr(Store, name, counting)
    bus = await Bus(settings, source="/tests").connect()
    await bus.declare_consumer_queues(SERVICE, BINDINGS)
    await bus.close()
    recipients = [address() for _ in range(30)]
    for to in recipients:  # queued before the service starts: it meets them as a burst
        await publish(confirmed(to))
    await start_service(create_app, "notifications")

    await eventually(lambda: count(records, {"status": "sent"}, 30))
    assert [len(await mailbox.messages_to(to)) for to in recipients] == [1] * 30
    assert sum(writes["claim"]) == 30 and len(writes["claim"]) < 30  # several claims per store write
    assert writes["finish"] == [1] * 30  # each outcome in its own write, as soon as the server answered
