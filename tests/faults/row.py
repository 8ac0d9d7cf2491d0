"""One row of the fault table: a burst of registrations through the public HTTP API, a fault injected mid-burst
and ended, then — with no manual step — a wait for recovery and quiescence, and a reconciliation from outside:
what HTTP answered, what the admin API lists, what the bus carried (a tap queue) and what the mail sink received.

A registration whose POST got no answer or a 5xx may have been stored or not (the client cannot know); if it was,
it must be completed like any other: published and mailed once."""

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika
import aiohttp
from pymongo import AsyncMongoClient

from services.notifications.domain import FINAL as FINAL_MAIL, Status as MailStatus
from shared.bus import QueueNames, quorum

from .stack import System, wait_http

COUNT = 300  # registrations per burst
RATE = 120  # offered per second, open loop (each POST leaves on time, whatever the answers before it)
FAULT_AT = COUNT // 3  # the fault starts after this many POSTs have left
PROBE = 20  # registrations posted once the fault is over and registration says it is ready: all must be 201
RECOVER_S = 120.0  # floor: everything delivered within this long after the fault ends
SETTLE_S = 2.0  # no new mail for this long (and nothing pending) before the count is final
QUIET_LIMIT_S = 60.0  # after recovery, at most this long for the last claims and retries to finish
POLL_S = 0.5
PARKED_EVERY = 4  # polls between looks at the parking queue


@dataclass
class Figures:
    fault: str
    posted: int = 0
    offered_rate: float = 0.0
    created: int = 0  # 201s
    stored: int = 0
    published: int = 0
    mails: int = 0
    copies: int = 0
    in_flight: int = 0  # sends in flight at a kill: the most crash-window copies allowed
    lost: int = 0
    server_errors: int = 0  # 5xx
    no_answer: int = 0  # connection refused or dropped, timeouts
    parked: int = 0
    recover_s: float | None = None  # None: not within RECOVER_S

    HEADER = ("| Fault mid-burst | burst | 201s | stored | published | mails | copies (≤ in flight) | lost | 5xx | "
              "no answer | parked | recovered in |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: | ---: |")

    def row(self) -> str:
        recovered = f"{self.recover_s:.1f} s" if self.recover_s is not None else f"> {RECOVER_S:.0f} s"
        return (f"| {self.fault} | {self.posted - PROBE} at {self.offered_rate:.0f}/s + {PROBE} | {self.created} | "
                f"{self.stored} | {self.published} | {self.mails} | "
                f"{self.copies} (≤ {self.in_flight}) | {self.lost} | {self.server_errors} | {self.no_answer} | "
                f"{self.parked} | {recovered} |")


@dataclass
class FaultClock:
    """What a fault tells the row: when it ended (recovery is measured from there) and how many sends were in
    flight when it killed a sender or cut the SMTP server off (the copies allowed: each may have been taken by the
    server without its sender knowing)."""

    ended_at: float | None = None
    in_flight: int = 0

    def end(self) -> None:
        self.ended_at = time.monotonic()


Fault = Callable[[System, FaultClock], Awaitable[None]]


@dataclass
class Observed:
    answers: dict[str, int | str] = field(default_factory=dict)  # email → HTTP status, or the error's name
    missing_retry_after: int = 0
    stored: dict[str, dict] = field(default_factory=dict)  # email → registration
    mails: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))  # email → mail summaries

    @property
    def created(self) -> set[str]:
        return {email for email, status in self.answers.items() if status == 201}

    def delivered(self) -> bool:
        """Every registration answered 201 is stored, and every stored one has its mail."""
        return self.created <= self.stored.keys() and all(self.mails.get(email) for email in self.stored)


async def json_of(http: aiohttp.ClientSession, url: str, **kwargs):
    async with http.get(url, **kwargs) as response:
        response.raise_for_status()
        return await response.json()


async def create_event(http: aiohttp.ClientSession, system: System) -> str:
    slug = f"fault-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC) + timedelta(days=30)
    async with http.post(f"{system.url('registration')}/events", headers=system.admin, json={
            "slug": slug, "title": "Innovasjonsjam i Bærum", "kind": "jam", "venue": "Bærum rådhus",
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=6)).isoformat(),
            # Seats for all: every registration is confirmed, and that is its one mail.
            "capacity": 100_000, "language": "nn"}) as response:
        assert response.status == 201, await response.text()
    return slug


async def post_registration(http: aiohttp.ClientSession, url: str, email: str, n: int, seen: Observed) -> None:
    body = {"name": f"Deltakar {n}", "email": email, "organisation": "Bærum kommune", "consent": True}
    try:
        async with http.post(url, json=body) as response:
            await response.read()
            seen.answers[email] = response.status
            if response.status >= 500 and "Retry-After" not in response.headers:
                seen.missing_retry_after += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        seen.answers[email] = type(exc).__name__


async def burst(http: aiohttp.ClientSession, system: System, slug: str, seen: Observed, count: int,
                fault_starts: Callable[[], None] | None = None) -> float:
    """count registrations offered at RATE per second; calls fault_starts after FAULT_AT. Returns the rate at
    which the POSTs actually left."""
    url = f"{system.url('registration')}/events/{slug}/registrations"
    first = len(seen.answers)
    started = time.monotonic()
    posts = []
    for n in range(first, first + count):
        await asyncio.sleep(max(0.0, started + (n - first) / RATE - time.monotonic()))
        if n - first == FAULT_AT and fault_starts is not None:
            fault_starts()
        email = f"p{n}-{slug}@example.no"
        seen.answers[email] = "not answered yet"
        posts.append(asyncio.create_task(post_registration(http, url, email, n, seen)))
    offered = (count - 1) / max(time.monotonic() - started, 1e-9)
    await asyncio.gather(*posts)
    return offered


class Tap:
    """A durable queue on the exchange holding every registration message published (read at the end)."""

    def __init__(self, system: System):
        self.system = system
        self.name = f"{system.settings.queue_prefix}tap"

    async def bind(self) -> None:
        connection = await aio_pika.connect(self.system.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.system.settings.exchange, aio_pika.ExchangeType.TOPIC,
                                                      durable=True)
            queue = await channel.declare_queue(self.name, durable=True, arguments=quorum())
            await queue.bind(exchange, "registration.#")

    async def published(self) -> dict[str, set[str]]:
        """Registration id → the ids of the messages published about it."""
        found: dict[str, set[str]] = defaultdict(set)
        connection = await aio_pika.connect(self.system.amqp_url)
        async with connection:
            queue = await (await connection.channel()).declare_queue(self.name, passive=True)
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                event = json.loads(message.body)
                found[event["data"]["registration_id"]].add(event["id"])
        return found


async def look(http: aiohttp.ClientSession, system: System, slug: str, seen: Observed) -> None:
    """Read what is stored (admin API) and what was mailed (mail sink API); keeps the last view if a service is
    down right now."""
    try:
        stored, cursor = {}, None
        while True:
            page = await json_of(http, f"{system.url('registration')}/events/{slug}/registrations",
                                 headers=system.admin, params={"limit": 500, **({"cursor": cursor} if cursor else {})})
            stored |= {item["email"]: item for item in page["items"]}
            if not (cursor := page["next_cursor"]):
                break
        seen.stored = stored
    except (aiohttp.ClientError, TimeoutError):
        pass
    listing = await json_of(http, f"{system.sink_api}/api/v1/messages", params={"limit": 100_000})
    mails = defaultdict(list)
    for mail in listing["messages"]:
        for to in mail["To"]:
            if to["Address"] in seen.answers:
                mails[to["Address"]].append(mail)
    seen.mails = mails


async def pending(http: aiohttp.ClientSession, system: System) -> list[str]:
    """What is still under way: mails claimed or retrying (audit API), messages waiting in a queue."""
    found = []
    try:
        for status in set(MailStatus) - FINAL_MAIL:
            page = await json_of(http, f"{system.live_url('notifications')}/notifications",
                                 headers=system.admin, params={"status": status.value, "limit": 200})
            if page["items"]:
                found.append(f"{len(page['items'])} mail(s) {status.value}")
    except (aiohttp.ClientError, TimeoutError, LookupError) as exc:
        found.append(f"notifications audit not readable: {exc!r}")
    names = QueueNames(system.settings.queue_name("notifications"))
    connection = await aio_pika.connect(system.amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in [names.main, *(names.retry(i) for i in range(len(system.settings.retry_delays_ms)))]:
            queue = await channel.declare_queue(name, passive=True)
            if queue.declaration_result.message_count:
                found.append(f"{queue.declaration_result.message_count} message(s) in {name}")
    return found


async def dead_letters(http: aiohttp.ClientSession, system: System) -> list[dict]:
    return await json_of(http, f"{system.live_url('notifications')}/dead-letters", headers=system.admin)


async def sending_now(system: System) -> int:
    """Mails claimed and not yet recorded as sent, read straight from the store: the sends in flight."""
    client = AsyncMongoClient(system.settings.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        return await client[system.settings.db_name("notifications")]["notifications"].count_documents(
            {"status": MailStatus.sending.value})
    finally:
        await client.close()


async def run(system: System, name: str, fault: Fault, store_outage: bool = False) -> tuple[Figures, list[str]]:
    """Burst, fault, recovery, reconciliation: the row's figures and every way it fell short of the floors. Only
    a store outage may answer 5xx, and then only 503 with Retry-After."""
    figures, seen, clock = Figures(name), Observed(), FaultClock()
    tap = Tap(system)
    await tap.bind()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                     connector=aiohttp.TCPConnector(limit=200)) as http:
        slug = await create_event(http, system)
        fault_task: list[asyncio.Task] = []
        try:
            figures.offered_rate = await burst(http, system, slug, seen, COUNT,
                                               lambda: fault_task.append(asyncio.create_task(fault(system, clock))))
        finally:  # the fault always runs to its end, which undoes it
            await asyncio.gather(*fault_task)
        # The system takes registrations again by itself: once registration says it is ready, all are taken.
        try:
            await wait_http(f"{system.url('registration')}/readyz", timeout_s=RECOVER_S)
        except TimeoutError:
            pass  # the probe's answers tell
        probe = set(seen.answers)
        await burst(http, system, slug, seen, PROBE)
        probe = {email: seen.answers[email] for email in set(seen.answers) - probe}
        # Recovery: from the end of the fault until every registration answered 201 is stored and everything
        # stored has its mail.
        parked, polls = [], 0
        while True:
            await look(http, system, slug, seen)
            elapsed = time.monotonic() - clock.ended_at
            if seen.delivered():
                figures.recover_s = max(0.0, elapsed)
                break
            polls += 1
            if elapsed > RECOVER_S or (polls % PARKED_EVERY == 0 and (parked := await dead_letters(http, system))):
                break  # a parked message needs a manual step: recovery has failed already
            await asyncio.sleep(POLL_S)
        # Quiescence: nothing claimed, retrying or queued, and no new mail for SETTLE_S, so late copies count too.
        still = await quiesce(http, system, slug, seen, time.monotonic() + QUIET_LIMIT_S) \
            if figures.recover_s is not None else []
        await look(http, system, slug, seen)
        parked = await dead_letters(http, system)
        ready = {}
        for process in system.running():
            if process.alive:
                service, replica = process.name.rsplit("-", 1)
                async with http.get(f"{system.url(service, int(replica))}/readyz") as response:
                    ready[process.name] = response.status
    published = await tap.published()
    problems = reconcile(figures, seen, published, parked, clock, ready, still, store_outage)
    if refused := {email: status for email, status in probe.items() if status != 201}:
        problems.append(f"{len(refused)} of {PROBE} registrations posted after recovery were not taken: "
                        f"{Counter(refused.values())}")
    return figures, problems


async def quiesce(http: aiohttp.ClientSession, system: System, slug: str, seen: Observed, deadline: float,
                  settle_s: float = SETTLE_S) -> list[str]:
    """Wait until nothing is claimed, retrying or queued and no new mail came for settle_s (so that late copies
    count too), or until the deadline; returns what is still pending."""
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        await look(http, system, slug, seen)
        total = sum(map(len, seen.mails.values()))
        if total != last:
            last, stable_since = total, time.monotonic()
        if time.monotonic() - stable_since >= settle_s and not await pending(http, system):
            return []
        await asyncio.sleep(POLL_S)
    return await pending(http, system)


def reconcile(figures: Figures, seen: Observed, published: dict[str, set[str]], parked: list, clock: FaultClock,
              ready: dict[str, int], still: list[str], store_outage: bool) -> list[str]:
    problems = []
    answers = Counter(status if isinstance(status, int) else "no answer" for status in seen.answers.values())
    created = seen.created
    stored_ids = {reg["id"] for reg in seen.stored.values()}
    mail_counts = {email: len(seen.mails.get(email, [])) for email in seen.stored}
    figures.posted = len(seen.answers)
    figures.created = len(created)
    figures.stored = len(seen.stored)
    figures.published = len(stored_ids & published.keys())
    figures.mails = sum(map(len, seen.mails.values()))
    figures.copies = sum(count - 1 for count in mail_counts.values() if count > 1)
    figures.in_flight = clock.in_flight
    figures.server_errors = sum(n for status, n in answers.items() if isinstance(status, int) and status >= 500)
    figures.no_answer = answers["no answer"]
    figures.parked = len(parked)
    not_stored = created - seen.stored.keys()
    unmailed = {email for email, count in mail_counts.items() if count == 0}
    unpublished = {reg["email"] for reg in seen.stored.values() if reg["id"] not in published}
    figures.lost = len(not_stored) + len(unmailed | unpublished)

    def check(ok: bool, problem: str) -> None:
        if not ok:
            problems.append(problem)

    check(figures.offered_rate >= 100, f"the burst left at {figures.offered_rate:.0f}/s, below 100/s")
    check("not answered yet" not in seen.answers.values(), "POSTs never finished")
    check(not not_stored, f"{len(not_stored)} registrations answered 201 are not stored")
    check(not unmailed, f"{len(unmailed)} stored registrations got no mail")
    check(not unpublished, f"{len(unpublished)} stored registrations were never published")
    answered_without_store = {e for e, s in seen.answers.items() if isinstance(s, int) and s < 500} - created
    check(not (seen.stored.keys() & answered_without_store),
          f"{len(seen.stored.keys() & answered_without_store)} registrations refused with a 4xx were stored")
    check(not {s for s in answers if isinstance(s, int) and 400 <= s < 500},
          f"answers besides 201, 5xx and no answer: {dict(answers)}")
    unexpected = [e for e in seen.mails if e not in seen.stored]
    check(not unexpected, f"{len(unexpected)} mails went to registrations that are not stored")
    check(figures.copies <= clock.in_flight,
          f"{figures.copies} copies, more than the {clock.in_flight} sends in flight at the fault")
    distinct = sum(len({m["MessageID"] for m in mails}) - 1 for mails in seen.mails.values())
    check(distinct == 0, f"{distinct} copies carry a Message-ID of their own (a receiver cannot drop them)")
    check(figures.server_errors == answers[503] if store_outage else figures.server_errors == 0,
          f"{figures.server_errors} answers 5xx: {dict(answers)}")
    check(seen.missing_retry_after == 0, f"{seen.missing_retry_after} 5xx answers without Retry-After")
    check(not parked, f"{len(parked)} messages parked: {parked[:3]}")
    check(figures.recover_s is not None, f"not recovered within {RECOVER_S:.0f} s of the fault's end")
    check(not still, f"not quiescent: {still}")
    check(all(status == 200 for status in ready.values()), f"/readyz after recovery: {ready}")
    statuses = Counter(reg["status"] for reg in seen.stored.values())
    check(set(statuses) <= {"confirmed"}, f"registrations left in statuses {dict(statuses)}")
    return problems
