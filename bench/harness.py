"""What the bench scripts share: their store and broker, free ports, a closed-loop load generator, percentiles,
readiness waits, CPU time."""

import asyncio
import cProfile
import os
import secrets
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from aiohttp import web
from pydantic import SecretStr

from moteplass import devstack
from shared import runtime
from shared.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile of latencies in seconds, in milliseconds."""
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1] * 1000


async def wait_ready(url: str, timeout_s: float = 30) -> None:
    """Until the URL answers 200 (the bench's service processes are its own, not the dev stack's children)."""
    await devstack.wait_healthy(url, [], timeout_s)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), to show cost apart from contention."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_settings(settings_json: str, secret: str | None = None) -> Settings:
    """The settings a bench passed to its service's process. Secrets serialise masked, so the child gets its
    JWT_SECRET here: the bench's own when it signs tokens, else a random one (a service never starts without)."""
    settings = Settings.model_validate_json(settings_json)
    return settings.model_copy(update={"jwt_secret": SecretStr(secret or secrets.token_urlsafe(32))})


def serve(app: web.Application, settings: Settings, service: str, port: int, profile: str | None) -> None:
    """Run a service in this process, as in production (one process per instance). With `profile`, under cProfile,
    its statistics written there when the process is told to stop; counting CPU time, not wall time: on a shared
    machine a process is often preempted mid-call, which would charge the wait to whatever function was running."""
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler:
        profiler.enable()
    runtime.run(app, settings, service, port)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)


@dataclass(frozen=True)
class Infra:
    mongo_url: str
    amqp_url: str
    store_pid: int | None  # the nx-27017 started here; None when MONGO_URL names someone else's store

    @property
    def store_label(self) -> str:
        return "nx-27017" if self.store_pid else self.mongo_url


@asynccontextmanager
async def store_and_broker() -> AsyncIterator[Infra]:
    """The store at MONGO_URL, else a fresh nx-27017 of the bench's own (removed after), and the broker at
    AMQP_URL (default the local one, started if stopped)."""
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    await devstack.ensure_broker(amqp_url)
    if mongo_url := os.environ.get("MONGO_URL"):
        yield Infra(mongo_url, amqp_url, None)
        return
    with tempfile.TemporaryDirectory(prefix="nx-bench-") as data:
        port = free_port()
        store = devstack.start_store(Path(data), port, Path(data) / "nx.log")
        try:
            mongo_url = f"mongodb://127.0.0.1:{port}"
            await devstack.wait_for_store(mongo_url)
            yield Infra(mongo_url, amqp_url, store.pid)
        finally:
            store.terminate()
            try:
                store.wait(10)
            except subprocess.TimeoutExpired:  # a busy shared machine: do not leave it running
                store.kill()
                store.wait()


async def delete_broker_objects(settings: Settings, service: str) -> None:
    """The bench's exchange and the service's queues (main, retries, dead)."""
    connection = await aio_pika.connect(settings.amqp_url)
    channel = await connection.channel()
    main = settings.queue_name(service)
    for name in [main, f"{main}.dead", *(f"{main}.retry.{i}" for i in range(len(settings.retry_delays_ms)))]:
        await channel.queue_delete(name)
    await channel.exchange_delete(settings.exchange)
    await connection.close()
