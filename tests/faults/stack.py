"""The system under fault, every part an OS process of its own as in production: nx-27017, the mail sink and each
service replica (`python -m services.<name>`), configured through the environment. Each process runs in its own
process group, so that `kill -9` takes all of it, and dies with the test process; `stop` ends every one."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from moteplass import devstack
from shared.auth import Role, issue_token
from shared.settings import Settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registration", "comments", "notifications")
START_TIMEOUT_S = 60.0  # a service on a loaded 2-core machine
# Short retries, so the suite is quick: five attempts span 23 s, which outlasts the 15 s SMTP outage, and is less
# than the 30 s lease of a claim, so a claim left by a dead sender must be waited out, not retried away.
RETRY_DELAYS_MS = [1000, 2000, 5000, 15000]
# What the mail server takes to accept a mail, as a real one does: at 120 mails/s about a dozen sends are in
# flight at any moment, so a sender killed mid-burst dies with some (its crash window is exercised).
SMTP_ACCEPT_MS = 100


class Process:
    """One OS process (and its group), its output in a log file; started again under the same name."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None, cwd: Path | None = None):
        self.name, self.argv, self.log_path, self.env, self.cwd = name, argv, log_path, env, cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as log:
            self.popen = devstack.spawn(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """kill -9: a crash, no cleanup of any kind."""
        if self.popen is not None:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: a clean shutdown begins."""
        if self.alive:
            self.signal_group(signal.SIGTERM)

    def wait_or_kill(self, timeout_s: float = 10) -> None:
        """Wait for the process to end, and kill -9 what is left after timeout_s."""
        if self.popen is None:
            return
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def tail(self, lines: int = 8, width: int = 400) -> str:
        try:
            return "\n".join(line[:width] for line in self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wait_http(url: str, process: Process | None = None, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until url answers 200 (and the process, if given, is still running)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while True:
            if process is not None and process.popen is not None and not process.alive:
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f} s"
                                   + (f":\n{process.tail()}" if process else ""))
            await asyncio.sleep(0.2)


@dataclass
class System:
    """nx-27017, the mail sink and the services, on free ports, with their logs under `base`."""

    base: Path
    amqp_url: str
    settings: Settings = field(init=False)
    store: Process = field(init=False)
    sink: Process = field(init=False)
    sink_api: str = field(init=False)
    services: dict[str, list[Process]] = field(default_factory=dict)

    def __post_init__(self):
        tag = self.base.name.replace("-", "_")
        ports = {f"{service}_port": free_port() for service in SERVICES}
        self.settings = Settings(
            mongo_url=f"mongodb://127.0.0.1:{free_port()}", amqp_url=self.amqp_url, db_prefix=f"{tag}_",
            exchange=f"{tag}.events", queue_prefix=f"{tag}.", smtp_host="127.0.0.1", smtp_port=free_port(),
            smtp_timeout_s=2.0, max_attempts=5, retry_delays_ms=RETRY_DELAYS_MS, relay_interval_s=0.5,
            public_base_url=f"http://127.0.0.1:{ports['registration_port']}",
            jwt_secret="fault-suite-secret-long-enough-for-hs256", **ports)
        self.sink_api = f"http://127.0.0.1:{free_port()}"
        self.admin = {"Authorization": f"Bearer {issue_token(self.settings, Role.admin)}"}
        data = self.base / "nx-27017"
        self.store = Process("nx-27017", [], self.base / "nx-27017.log")
        self._store_data = data
        self.sink = Process("mail sink", [sys.executable, "-m", "tests.faults.sink",
                                          "--smtp-port", str(self.settings.smtp_port),
                                          "--http-port", self.sink_api.rsplit(":", 1)[1],
                                          "--accept-ms", str(SMTP_ACCEPT_MS)],
                            self.base / "sink.log", cwd=ROOT)

    def env(self, **overrides) -> dict:
        s = self.settings
        values = {
            "MONGO_URL": s.mongo_url, "AMQP_URL": s.amqp_url, "EXCHANGE": s.exchange, "QUEUE_PREFIX": s.queue_prefix,
            "DB_PREFIX": s.db_prefix, "MAX_ATTEMPTS": s.max_attempts, "RETRY_DELAYS_MS": json.dumps(s.retry_delays_ms),
            "SMTP_HOST": s.smtp_host, "SMTP_PORT": s.smtp_port, "SMTP_TIMEOUT_S": s.smtp_timeout_s,
            "REGISTRATION_PORT": s.registration_port, "COMMENTS_PORT": s.comments_port,
            "NOTIFICATIONS_PORT": s.notifications_port, "PUBLIC_BASE_URL": s.public_base_url,
            "NOTIFICATIONS_PUBLIC_URL": f"http://127.0.0.1:{s.notifications_port}",
            "JWT_SECRET": s.jwt_secret.get_secret_value(), "RELAY_INTERVAL_S": s.relay_interval_s,
            "LOG_LEVEL": "WARNING",
            # One client address posts the whole burst; a crashed flow is finished soon after.
            "REGISTRATION_POSTS_PER_MINUTE": 1_000_000, "REGISTRATION_RECONCILE_GRACE_S": 2,
            **overrides}
        inherited = {k: v for k, v in os.environ.items()
                     if not k.upper().startswith(("MONGO_", "AMQP_", "SMTP_", "REGISTRATION_", "COMMENTS_",
                                                  "NOTIFICATIONS_", "JWT_"))}
        return {**inherited, "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in values.items()}}

    def url(self, service: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.port(service, replica)}"

    def port(self, service: str, replica: int = 0) -> int:
        processes = self.services.get(service, [])
        if replica < len(processes):
            return int(processes[replica].env[f"{service.upper()}_PORT"])
        if replica == 0:
            return getattr(self.settings, f"{service}_port")
        raise LookupError(f"{service} has no replica {replica}")

    def live_url(self, service: str) -> str:
        """The URL of a replica that runs (LookupError if none does)."""
        for replica, process in enumerate(self.services.get(service, [])):
            if process.alive:
                return self.url(service, replica)
        raise LookupError(f"no {service} replica is running")

    # --- the parts ---------------------------------------------------------------------------------------------

    async def start_store(self) -> None:
        port = int(self.settings.mongo_url.rsplit(":", 1)[1])
        self.store.popen = devstack.start_store(self._store_data, port, self.store.log_path)
        await devstack.wait_for_store(self.settings.mongo_url, timeout_s=START_TIMEOUT_S)

    async def start_sink(self) -> None:
        self.sink.start()
        await wait_http(f"{self.sink_api}/api/v1/messages?limit=1", self.sink)

    def _spawn_service(self, service: str, replica: int) -> Process:
        processes = self.services.setdefault(service, [])
        if replica < len(processes):
            process = processes[replica]
        else:
            port = self.port(service) if replica == 0 else free_port()
            process = Process(f"{service}-{replica}", [sys.executable, "-m", f"services.{service}"],
                              self.base / f"{service}-{replica}.log", env=self.env(**{f"{service.upper()}_PORT": port}),
                              cwd=self.base)  # no stray .env of a checkout
            processes.append(process)
        return process.start()

    async def start_service(self, service: str, replica: int = 0) -> Process:
        """Start (or start again) one replica of a service and wait until it is healthy."""
        process = self._spawn_service(service, replica)
        await wait_http(f"{self.url(service, replica)}/healthz", process)
        return process

    async def start(self, notification_replicas: int = 1) -> "System":
        """Everything, side by side where nothing waits for another: the services need the store."""
        await asyncio.gather(self.start_store(), self.start_sink())
        replicas = [("registration", 0), ("comments", 0), *(("notifications", i) for i in range(notification_replicas))]
        spawned = [(self._spawn_service(service, replica), self.url(service, replica)) for service, replica in replicas]
        await asyncio.gather(*(wait_http(f"{url}/healthz", process) for process, url in spawned))
        return self

    def running(self) -> list[Process]:
        return [p for processes in self.services.values() for p in processes]

    def stop(self) -> None:
        """Every process it started, services before the store they write to, each group at once. Never raises."""
        for group in (self.running(), [self.sink, self.store]):
            for process in group:
                process.terminate()
            for process in group:
                try:
                    process.wait_or_kill()
                except Exception:  # keep stopping the others
                    pass

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path}) ---\n{p.tail()}" for p in [*self.running(), self.store])
