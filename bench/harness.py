"""What the bench scripts share: free ports, a closed-loop load generator, percentiles, readiness waits, CPU time."""

import asyncio
import os
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp


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
                raise RuntimeError(f"{url} did not become ready within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc), to show cost apart from contention."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
