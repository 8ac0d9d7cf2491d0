"""Benchmark of the notifications service (a script that prints a table, not a test).

    .venv/bin/python bench/notifications.py [--messages 2000] [--runs 3] [--profile service.prof]

Starts its own nx-27017 (unless MONGO_URL is set) and the dev mail sink, each in a child process, and uses the
RabbitMQ at AMQP_URL (default local). Queues a burst of registration.confirmed messages while the service is not
running, then starts the service (in its own process, as in production) and measures mails/s until every mail is
recorded as sent. Beside it, in the same run and to the same sink, the raw aiosmtplib send rate of the same
rendered mail: over one connection, and over as many connections as the service keeps. Floor: service ≥ 0.8× raw
at the same number of connections.

Fair by construction: each row starts with an empty sink; the service's end is heard from its notification.sent
events, not polled from the store; beside the rates, the CPU per mail of the raw client, the sink, the service and
the store, since on a shared machine they compete for the same cores."""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
import aiosmtplib
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import Infra, cpu_seconds, delete_broker_objects, free_port, store_and_broker  # noqa: E402
from services.notifications import domain, render  # noqa: E402
from services.notifications.consumers import BINDINGS  # noqa: E402
from services.notifications.mailer import POOL_SIZE  # noqa: E402
from shared.bus import Bus  # noqa: E402
from shared.messages import make_event  # noqa: E402
from shared.messages.registration import EventInfo, RegistrationConfirmed  # noqa: E402
from shared.settings import Settings  # noqa: E402

SERVICE = "notifications"
START = datetime.now(UTC) + timedelta(days=30)
EVENT = EventInfo(slug="innovasjonsjam", title="Innovasjonsjam i Bærum", starts_at=START,
                  ends_at=START + timedelta(hours=6), venue="Bærum rådhus, Sandvika")


def serve(settings_json: str, profile: str | None = None) -> None:
    from services.notifications.app import create_app

    settings = harness.child_settings(settings_json)
    harness.serve(create_app(settings), settings, "notifications", settings.notifications_port, profile)


def sink(smtp_port: int, http_port: int) -> None:
    from moteplass.mailsink import serve as serve_sink

    asyncio.run(serve_sink("127.0.0.1", smtp_port, http_port))


def registration(n: int) -> RegistrationConfirmed:
    return RegistrationConfirmed(event=EVENT, registration_id=f"r{n}", name=f"Deltakar {n}",
                                 email=f"deltakar{n}@example.no", language="nn", status="confirmed",
                                 manage_url=f"http://127.0.0.1:8081/registrations/r{n}?token=t{n}")


class CpuMeter:
    """CPU milliseconds per mail that each watched process (by name: pid) spends from now on."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def per_mail(self, count: int) -> dict[str, float]:
        return {name: (cpu_seconds(pid) - self.before[name]) / count * 1000 for name, pid in self.pids.items()}


async def raw_rate(settings: Settings, count: int, connections: int, watched: dict[str, int]) -> tuple[float, dict]:
    """Mails/s straight through aiosmtplib: the same rendered mail, `connections` connections sending at once;
    with the CPU per mail of the watched processes (the sink) and of this one (the aiosmtplib client)."""
    [mail] = domain.plan(registration(0))
    message = render.compose(mail, settings.mail_from, "bench")
    clients = [aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port) for _ in range(connections)]
    for client in clients:
        await client.connect()
    queue = iter(range(count))

    async def work(client: aiosmtplib.SMTP) -> None:
        for _ in queue:
            await client.sendmail(message.sender, message.recipients, message.data)

    meter, started, own = CpuMeter(watched), time.perf_counter(), time.process_time()
    await asyncio.gather(*(work(client) for client in clients))
    elapsed = time.perf_counter() - started
    cpu = {**meter.per_mail(count), "client": (time.process_time() - own) / count * 1000}
    for client in clients:
        await client.quit()
    return count / elapsed, cpu


async def service_rate(settings: Settings, count: int, watched: dict[str, int],
                       profile: str | None = None) -> tuple[float, float, dict]:
    """Queue `count` messages, start the service, time until all are recorded sent.
    Returns (mails/s, start-up s, CPU ms per mail of the service and the watched processes)."""
    bus = await Bus(settings, source="/bench").connect()
    await bus.declare_consumer_queues(SERVICE, BINDINGS)
    for n in range(count):
        await bus.publish(make_event(registration(n), source="/bench"))
    await bus.close()

    # Completion is heard, not polled: the service announces each recorded mail (notification.sent), whereas
    # counting records is a full scan on nx-27017 that would load the store under test.
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    exchange = await channel.get_exchange(settings.exchange)
    announced = await channel.declare_queue(exclusive=True)
    await announced.bind(exchange, "notification.#")
    done, recorded = asyncio.Event(), [0]

    async def heard(_) -> None:
        recorded[0] += 1
        if recorded[0] == count:
            done.set()

    await announced.consume(heard, no_ack=True)
    client = AsyncMongoClient(settings.mongo_url)
    records = client[settings.db_name(SERVICE)]["notifications"]
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(settings.model_dump_json(), profile))
    launched = time.perf_counter()
    process.start()
    try:
        while await records.find_one({}, {"_id": 1}) is None:
            await asyncio.sleep(0.01)
        started = time.perf_counter()  # the first mail is under way: start-up is over
        meter = CpuMeter({**watched, "service": process.pid})
        while not done.is_set():
            if not process.is_alive():
                raise SystemExit("the service died")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1)
        elapsed = time.perf_counter() - started
        cpu = meter.per_mail(count)
        if (sent := await records.count_documents({"status": "sent"})) != count:
            raise SystemExit(f"{sent} of {count} mails recorded as sent")
        return count / elapsed, started - launched, cpu
    finally:
        process.terminate()
        process.join(10)
        await connection.close()
        await client.drop_database(settings.db_name(SERVICE))
        await client.close()


async def main(count: int, runs: int, profile: str | None) -> None:
    async with store_and_broker() as infra:
        await bench(infra, count, runs, profile)


async def bench(infra: Infra, count: int, runs: int, profile: str | None) -> None:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    mongo_url, amqp_url = infra.mongo_url, infra.amqp_url
    smtp_port, http_port = free_port(), free_port()
    mail_sink = multiprocessing.get_context("spawn").Process(target=sink, args=(smtp_port, http_port))
    mail_sink.start()
    settings = Settings(mongo_url=mongo_url, amqp_url=amqp_url, db_prefix=f"{tag}_", exchange=f"{tag}.events",
                        queue_prefix=f"{tag}.", smtp_port=smtp_port, notifications_port=free_port(),
                        log_level="WARNING")
    watched = {"sink": mail_sink.pid, **({"store": infra.store_pid} if infra.store_pid else {})}
    rows = []
    try:
        await wait_for_sink(smtp_port)
        for _ in range(runs):
            # Raw and service back to back in each run, so that both meet the same load on the shared machine;
            # each meets an empty sink (it keeps every mail parsed in memory, which slows it as they pile up).
            await empty(http_port)
            raw_one, _ = await raw_rate(settings, count, 1, watched)
            await empty(http_port)
            raw_pool, raw_cpu = await raw_rate(settings, count, POOL_SIZE, watched)
            await empty(http_port)
            rows.append((raw_one, raw_pool, raw_cpu, *await service_rate(settings, count, watched, profile)))
    finally:
        await delete_broker_objects(settings, SERVICE)
        mail_sink.terminate()

    print(f"\nNotifications: a burst of {count} queued registration.confirmed messages to the dev mail sink, "
          f"{runs} run(s)\n")
    print(f"{'run':<5}{'raw, 1 conn.':>14}{f'raw, {POOL_SIZE} conn.':>15}{f'service, {POOL_SIZE} conn.':>19}"
          f"{'× raw':>8}{'start-up s':>12}   CPU ms/mail: raw client, sink | service, its sink, store")
    print("-" * 120)
    for n, (raw_one, raw_pool, raw_cpu, rate, startup, cpu) in enumerate(rows, 1):
        print(f"{n:<5}{raw_one:>14.0f}{raw_pool:>15.0f}{rate:>19.0f}{rate / raw_pool:>8.2f}{startup:>12.2f}"
              f"   {raw_cpu['client']:.1f}, {raw_cpu['sink']:.1f} | {cpu['service']:.1f}, {cpu['sink']:.1f}, {cpu.get('store', float('nan')):.1f}")
    ratios = [row[3] / row[1] for row in rows]
    print(f"\nmails/s; service = render, claim, send, record, publish the outcome; CPU = user + system time per mail "
          f"of each process (on {os.cpu_count()} cores shared with the broker and whatever else runs)")
    print(f"floor: service ≥ 0.8× raw at {POOL_SIZE} connections → "
          f"{'met' if min(ratios) >= 0.8 else 'NOT met'} (× raw {min(ratios):.2f}–{max(ratios):.2f})")
    if profile:
        print(f"profile of the service's last run: {profile} (python -m pstats {profile})")


async def empty(http_port: int) -> None:
    async with aiohttp.ClientSession() as http, http.delete(f"http://127.0.0.1:{http_port}/api/v1/messages") as resp:
        resp.raise_for_status()


async def wait_for_sink(port: int) -> None:
    for _ in range(100):
        probe = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        try:
            await probe.connect()
            await probe.quit()
            return
        except (OSError, aiosmtplib.SMTPException):
            await asyncio.sleep(0.1)
    raise SystemExit("the mail sink did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1, help="raw and service rows measured this many times")
    parser.add_argument("--profile", metavar="FILE", help="run the service under cProfile, statistics to FILE")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.runs, args.profile))
