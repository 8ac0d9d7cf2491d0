"""Benchmark of the registration service (a script that prints a table, not a test).

    .venv/bin/python bench/registration.py [--clients 64] [--seconds 5] [--events 50] [--capacity 200]

Starts its own nx-27017 (unless MONGO_URL is set) and uses the RabbitMQ at AMQP_URL (default local), runs the
service in a child process (as in production), creates --events møteplassar of --capacity seats, then measures at
N concurrent clients: registration POSTs/s with p50/p99 (each a full registration: window check, insert, atomic
seat or waiting-list place, outbox write, publish confirmed by the broker, outbox cleared), spread over the
events, beside the raw insert_one rate of the same store in the same run. Floors (issue 2): registrations/s
>= 0.5x raw insert_one, p99 <= 50 ms at 64 clients."""

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from moteplass import devstack  # noqa: E402
from services.registration.config import RegistrationConfig  # noqa: E402
from shared.auth import Role, issue_token  # noqa: E402
from shared.mongo import connect  # noqa: E402
from shared.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(settings_json: str, config_json: str, jwt_secret: str) -> None:
    from aiohttp import web

    from services.registration.app import create_app

    settings = Settings.model_validate_json(settings_json).model_copy(update={"jwt_secret": SecretStr(jwt_secret)})
    app = create_app(settings, RegistrationConfig.model_validate_json(config_json))
    web.run_app(app, host="127.0.0.1", port=settings.registration_port, access_log=None, print=None)


async def load(clients: int, seconds: float, request: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run `request(n)` from `clients` concurrent workers for `seconds`; returns (requests/s, latencies in s)."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            started = time.perf_counter()
            await request(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


def p(latencies: list[float], q: int) -> float:
    return statistics.quantiles(latencies, n=100)[q - 1] * 1000 if len(latencies) > 1 else float("nan")


async def wait_ready(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready")
            await asyncio.sleep(0.2)


async def run(clients: int, seconds: float, events: int, capacity: int) -> None:
    tag = f"bench{uuid.uuid4().hex[:8]}"
    nx = None
    tmp = tempfile.TemporaryDirectory()
    mongo_url = os.environ.get("MONGO_URL")
    if mongo_url is None:
        port = free_port()
        nx = devstack.start_store(Path(tmp.name), port, Path(tmp.name) / "nx.log")
        mongo_url = f"mongodb://127.0.0.1:{port}"
        await devstack.wait_for_store(mongo_url)
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    await devstack.ensure_broker(amqp_url)
    secret = uuid.uuid4().hex * 2
    settings = Settings(mongo_url=mongo_url, amqp_url=amqp_url, db_prefix=f"{tag}_", exchange=f"{tag}.events",
                        queue_prefix=f"{tag}.", registration_port=free_port(), log_level="WARNING",
                        jwt_secret=secret)
    # A limit high enough that the clients measure the service, not the guard (the count itself still runs).
    config = RegistrationConfig(posts_per_minute=10**9)
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(settings.model_dump_json(exclude={"jwt_secret", "smtp_password"}),
                            config.model_dump_json(), secret), daemon=True)
    client = connect(settings)
    db = client[settings.db_name("registration")]
    rows: list[tuple[str, float, float, float]] = []
    try:
        server.start()
        base = f"http://127.0.0.1:{settings.registration_port}"
        await wait_ready(f"{base}/readyz")
        admin = {"Authorization": f"Bearer {issue_token(settings, Role.admin)}"}
        starts = datetime.now(UTC) + timedelta(days=30)
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            for e in range(events):
                async with http.post(f"{base}/events", headers=admin, json={
                        "slug": f"moteplass-{e}", "title": f"Møteplass {e}", "starts_at": starts.isoformat(),
                        "ends_at": (starts + timedelta(hours=6)).isoformat(), "venue": "Sandvika",
                        "capacity": capacity}) as resp:
                    assert resp.status == 201, await resp.text()

            raw = db["raw_bench"]
            rate, lat = await load(clients, seconds, lambda n: raw.insert_one(
                {"event_slug": "moteplass-0", "email": f"r{n}@example.no", "name": "Bench", "at": datetime.now(UTC)}))
            rows.append(("raw insert_one", rate, p(lat, 50), p(lat, 99)))
            raw_insert = rate

            statuses: dict[str, int] = {}

            async def post(n: int) -> None:
                body = {"name": f"Deltakar {n}", "email": f"d{n}@example.no", "organisation": "Bærum kommune",
                        "consent": True}
                async with http.post(f"{base}/events/moteplass-{n % events}/registrations", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    status = (await resp.json())["status"]
                    statuses[status] = statuses.get(status, 0) + 1

            rate, lat = await load(clients, seconds, post)
            rows.append(("POST /events/{slug}/registrations", rate, p(lat, 50), p(lat, 99)))
            post_rate, post_p99 = rate, p(lat, 99)

        print(f"\nregistration service, {events} møteplassar of {capacity} seats, {clients} concurrent clients, "
              f"{seconds:.0f} s per row, store {'nx-27017' if nx else mongo_url}\n")
        print(f"{'operation':44} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for name, rate, p50, p99 in rows:
            print(f"{name:44} {rate:9.0f} {p50:8.1f} {p99:8.1f}")
        print(f"\nregistrations: {statuses}")
        print(f"POST / raw insert_one = {post_rate / raw_insert:.2f} (floor 0.5); POST p99 {post_p99:.1f} ms "
              f"(floor <= 50 ms at 64 clients)")
    finally:
        server.terminate()
        server.join(10)
        await client.drop_database(settings.db_name("registration"))
        await client.close()
        connection = await aio_pika.connect(settings.amqp_url)
        channel = await connection.channel()
        await channel.exchange_delete(settings.exchange)
        await connection.close()
        if nx is not None:
            nx.terminate()
            nx.wait(10)
        tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.seconds, args.events, args.capacity))


if __name__ == "__main__":
    main()
