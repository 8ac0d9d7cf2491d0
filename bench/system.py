"""Benchmark of the running system (start it with `make run` first): the latency from a registration POST to the
mail accepted by the mail sink at a steady rate, and each service's idle memory.

    .venv/bin/python bench/system.py [--rate 100] [--seconds 5]

Reads mail through the Mailpit API at MAILPIT_URL (default the dev sink, http://127.0.0.1:8025); the time a mail
was accepted is the sink's `Created`. Floors (issue 2): POST → mail p50 <= 20 ms, p99 <= 100 ms at 100
registrations/s; each service idles under 80 MB RSS."""

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import percentile, wait_ready  # noqa: E402
from shared.auth import Role, issue_token  # noqa: E402
from shared.settings import local_settings  # noqa: E402

SERVICES = ("registration", "comments", "notifications")


def rss_mb(service: str) -> float | None:
    """Resident memory of the process running `python -m services.<service>`, from /proc."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if f"services.{service}".encode() in cmdline:
                status = (proc / "status").read_text()
                kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                return kb / 1024
        except (OSError, StopIteration, ValueError):
            continue
    return None


async def run(rate: float, seconds: float) -> None:
    settings = local_settings()  # the running stack's secret, for an admin token
    base = f"http://127.0.0.1:{settings.registration_port}"
    mailpit = os.environ.get("MAILPIT_URL", "http://127.0.0.1:8025").rstrip("/")
    for service in SERVICES:
        await wait_ready(f"http://127.0.0.1:{getattr(settings, f'{service}_port')}/readyz")
    idle = {service: rss_mb(service) for service in SERVICES}

    admin = {"Authorization": f"Bearer {issue_token(settings, Role.admin)}"}
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    starts = datetime.now(UTC) + timedelta(days=30)
    total = int(rate * seconds)
    sent_at: dict[str, float] = {}
    post_latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/events", headers=admin, json={
                "slug": slug, "title": "Benchmark-møteplass", "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=3)).isoformat(), "venue": "Sandvika", "capacity": total}) as resp:
            assert resp.status == 201, await resp.text()

        async def register(n: int) -> None:
            email = f"bench-{slug}-{n}@example.no"
            started = time.time()
            async with http.post(f"{base}/events/{slug}/registrations", json={
                    "name": f"Deltakar {n}", "email": email, "organisation": "Bærum kommune", "consent": True}) as resp:
                assert resp.status == 201, await resp.text()
            sent_at[email] = started
            post_latencies.append(time.time() - started)

        # Open loop: one POST every 1/rate s whatever the answers, as independent users would.
        tasks, t0 = [], time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(register(n)))
        await asyncio.gather(*tasks)

        delays: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(delays) < total and time.monotonic() < deadline:
            async with http.get(f"{mailpit}/api/v1/messages", params={"limit": 5000}) as resp:
                for message in (await resp.json())["messages"]:
                    to = message["To"][0]["Address"] if message["To"] else ""
                    if to in sent_at and to not in delays:
                        created = datetime.fromisoformat(message["Created"].replace("Z", "+00:00")).timestamp()
                        delays[to] = created - sent_at[to]
            await asyncio.sleep(0.5)
    after = {service: rss_mb(service) for service in SERVICES}

    mail = list(delays.values())
    print(f"\nrunning system, {total} registrations at {rate:.0f}/s (open loop), one møteplass\n")
    print(f"{'measure':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'POST /events/{slug}/registrations':34} {percentile(post_latencies, 50):8.1f} "
          f"{percentile(post_latencies, 99):8.1f} {max(post_latencies) * 1000:8.1f}")
    print(f"{'POST -> mail accepted by the sink':34} {percentile(mail, 50):8.1f} {percentile(mail, 99):8.1f} "
          f"{max(mail) * 1000:8.1f}")
    print(f"\nmails arrived: {len(mail)} of {total}")
    print(f"\n{'service':15} {'idle RSS MB':>12} {'after load MB':>14}")
    for service in SERVICES:
        fmt = lambda v: f"{v:.1f}" if v is not None else "not running"  # noqa: E731
        print(f"{service:15} {fmt(idle[service]):>12} {fmt(after[service]):>14}")
    print("\nfloors: POST -> mail p50 <= 20 ms, p99 <= 100 ms; idle RSS < 80 MB per service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
