"""Benchmark of the comments service (a script that prints a table, not a test).

    .venv/bin/python bench/comments.py [--clients 32] [--seconds 5] [--runs 1] [--profile service.prof]

Starts its own nx-27017 (unless MONGO_URL is set) and uses the RabbitMQ at AMQP_URL (default local), runs the
service in a child process, seeds a thread of 10,000 approved comments straight through the store module, then
measures at N concurrent clients: comment POSTs/s, first-page and deep-page GETs/s with p50/p99 (deep pages both
repeated, which the page cache serves, and all different, which it cannot), beside the raw insert_one/find rates
of the same store in the same run. The CPU the store and the service use per operation shows their cost apart
from the contention of a shared machine. With --profile, the service runs under cProfile and writes its statistics
there when it stops (read them with `python -m pstats`)."""

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import (  # noqa: E402
    Infra, cpu_seconds, delete_broker_objects, free_port, load, percentile, store_and_broker, wait_ready,
)
from services.comments import domain, store as comments_store  # noqa: E402
from services.comments.config import CommentsConfig  # noqa: E402
from services.comments.models import NewComment  # noqa: E402
from services.comments.store import Store  # noqa: E402
from shared import outbox  # noqa: E402
from shared.messages.comments import CommentStatus  # noqa: E402
from shared.mongo import connect  # noqa: E402
from shared.settings import Settings  # noqa: E402

THREAD = "bench-thread"
SEED = 10_000
RAW, POST = "raw insert_one", "POST /threads/{t}/comments"
FIRST, DEEP = "GET first page (20)", "GET deep page (same, at 9,960)"


def serve(settings_json: str, config_json: str, profile: str | None = None) -> None:
    from services.comments.app import create_app

    settings = harness.child_settings(settings_json)
    harness.serve(create_app(settings, CommentsConfig.model_validate_json(config_json)), settings, "comments",
                  settings.comments_port, profile)


async def seed(store: Store) -> list[domain.Comment]:
    now = datetime.now(UTC)
    comments = [domain.new_comment(
        THREAD, NewComment(author_name=f"Person {n}", email=f"p{n}@example.no",
                           body=f"Kommentar **nummer** {n} om innovasjon i kommunen."),
        id=store.new_id(now), parent=None, max_depth=2, status=CommentStatus.approved, ip="10.0.0.1", now=now)
        for n in range(SEED)]
    await store.insert_many([(comment, []) for comment in comments])
    # The thread's record, as its first comment made it: without it every POST of the first moments would count
    # as opening a new thread (a second rate limit and an upsert), which a thread of 10,000 comments never does.
    await store.ensure_thread(THREAD)
    return sorted(comments, key=lambda c: c.id, reverse=True)


async def settled(db, timeout_s: float = 30) -> None:
    """Wait until the POSTs' publishing and the relay's clean-up (after its grace) are done, so that the GET rows
    measure reading, not the tail of the writes."""
    deadline = time.monotonic() + timeout_s
    while await db["comments"].find_one({outbox.DUE: {"$exists": True}}, {"_id": 1}) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def run(clients: int, seconds: float, runs: int, profile: str | None) -> None:
    async with store_and_broker() as infra:
        await bench(infra, clients, seconds, runs, profile)


async def bench(infra: Infra, clients: int, seconds: float, runs: int, profile: str | None) -> None:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    mongo_url, amqp_url = infra.mongo_url, infra.amqp_url
    settings = Settings(mongo_url=mongo_url, amqp_url=amqp_url, db_prefix=f"{tag}_", exchange=f"{tag}.events",
                        queue_prefix=f"{tag}.", comments_port=free_port(), log_level="WARNING",
                        trusted_proxies=1)  # each client its own address, as the X-Forwarded-For it sends
    # Limits high enough that the clients measure the service, not the spam guard (the check itself still runs).
    config = CommentsConfig(posts_per_minute=10**9, new_threads_per_hour=10**9)
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(settings.model_dump_json(exclude={"jwt_secret", "smtp_password"}),
                            config.model_dump_json(), profile), daemon=True)
    client = connect(settings)
    db = client[settings.db_name("comments")]
    try:
        server.start()
        base = f"http://127.0.0.1:{settings.comments_port}"
        await wait_ready(f"{base}/readyz")
        store = Store(db)
        began = time.perf_counter()
        docs = await seed(store)
        print(f"seeded {SEED:,} approved comments in {time.perf_counter() - began:.1f} s", flush=True)

        raw = db["raw_bench"]
        sample = docs[SEED // 2]
        stored_ids = [comments_store.object_id(c.id) for c in docs]
        # A collection of its own with the comments' indexes, so the thread's pages stay as they were seeded.
        indexed = Store(client[f"{tag}_raw"])
        await indexed.ensure_indexes()
        pending = NewComment(author_name="Raw", email="raw@example.no", body="x" * 40)
        deep = domain.encode_cursor(domain.Sort.newest, docs[SEED - 41])
        rows: list[tuple[str, float, float, float, float, float]] = []
        figures: dict[str, list[float]] = {}
        # CPU per operation apart from contention: the machine is shared, the store's own cost is not.
        processes = {"store": infra.store_pid, "service": server.pid}

        def cpu() -> dict[str, float]:
            return {name: cpu_seconds(pid) if pid else float("nan") for name, pid in processes.items()}

        async def measure(name: str, request: Callable[[int], Awaitable[object]]) -> float:
            before = cpu()
            rate, lat = await load(clients, seconds, request)
            used = {key: (value - before[key]) / len(lat) * 1000 for key, value in cpu().items()}
            rows.append((name, rate, percentile(lat, 50), percentile(lat, 99), used["store"], used["service"]))
            figures.setdefault(name, []).append(rate)
            figures.setdefault(f"{name} p99", []).append(percentile(lat, 99))
            return rate

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def post(n: int) -> None:
                body = {"author_name": "Bench", "email": f"b{n}@example.no", "body": f"Benchmark-kommentar {n}"}
                async with http.post(f"{base}/threads/{THREAD}/comments", json=body,
                                     headers={"X-Forwarded-For": f"10.9.{n // 250 % 250}.{n % 250}"}) as resp:
                    assert resp.status == 201, await resp.text()
                    await resp.read()

            async def get(params: dict) -> None:
                async with http.get(f"{base}/threads/{THREAD}/comments", params=params) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()

            for run_no in range(runs):
                offset = run_no * 10**6  # every run posts new texts (the same text twice would be refused)
                raw_insert = await measure(RAW, lambda n: raw.insert_one(
                    {"thread_id": THREAD, "n": n, "body": sample.body, "html": sample.html,
                     "at": datetime.now(UTC)}))
                indexed_insert = await measure("raw insert_one (comments, all its indexes)",
                                               lambda n: indexed.comments.insert_one(comments_store.to_doc(
                                                   domain.new_comment(
                                                       f"raw-{offset + n}", pending,
                                                       id=Store.new_id(datetime.now(UTC)), parent=None, max_depth=2,
                                                       status=CommentStatus.pending, ip=None, now=datetime.now(UTC)))))
                await measure("raw find (first 20 of the thread)", lambda n: db["comments"].find(
                    {"thread_id": THREAD, "depth": 0, "listed": True}).sort("order", -1).limit(20).to_list())
                await measure("raw find_one by _id", lambda n: db["comments"].find_one({"_id": stored_ids[n % SEED]}))
                post_rate = await measure(POST, lambda n: post(offset + n))
                figures.setdefault("ratio", []).append(post_rate / raw_insert)
                figures.setdefault("ratio indexed", []).append(post_rate / indexed_insert)
                await settled(db)
                await measure(FIRST, lambda n: get({}))
                await measure(DEEP, lambda n: get({"cursor": deep}))
                await measure("GET deep pages (all different, uncached)", lambda n: get(
                    {"cursor": domain.encode_cursor(domain.Sort.newest, docs[(SEED // 2 + n * 7) % (SEED - 1)])}))

        print(f"\ncomments service, thread of {SEED:,} approved comments, {clients} concurrent clients, "
              f"{seconds:.0f} s per row, {runs} run(s), store {infra.store_label}, relay sweep every "
              f"{settings.relay_interval_s:g} s; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
              f"(the client, the service and the store share them)\n")
        print(f"{'operation':44} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'store CPU ms/op':>16} "
              f"{'service CPU ms/op':>18}")
        for name, rate, p50, p99, store_cpu, service_cpu in rows:
            print(f"{name:44} {rate:9.0f} {p50:8.1f} {p99:8.1f} {store_cpu:16.2f} {service_cpu:18.2f}")

        def spread(name: str, fmt: str = ".0f") -> str:
            values = figures[name]
            return f"{min(values):{fmt}}–{max(values):{fmt}}" if len(values) > 1 else f"{values[0]:{fmt}}"

        print(f"\nPOST / raw insert_one = {spread('ratio', '.2f')} (floor 0.5); against an insert into the indexed "
              f"comments collection {spread('ratio indexed', '.2f')}")
        print(f"first page {spread(FIRST)}/s p99 {spread(FIRST + ' p99', '.1f')} ms; deep page {spread(DEEP)}/s "
              f"p99 {spread(DEEP + ' p99', '.1f')} ms (floor 2,000/s, p99 <= 30 ms)")
    finally:
        server.terminate()
        server.join(10)
        for name in (settings.db_name("comments"), f"{tag}_raw"):
            await client.drop_database(name)
        await client.close()
        await delete_broker_objects(settings, "comments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=1, help="repeat the rows (a shared machine varies)")
    parser.add_argument("--profile", metavar="FILE", help="run the service under cProfile, its statistics to FILE")
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.seconds, args.runs, args.profile))


if __name__ == "__main__":
    main()
