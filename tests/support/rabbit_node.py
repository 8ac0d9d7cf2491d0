"""A private RabbitMQ node for tests that stop, restart or kill the broker: its own node name, AMQP and
distribution ports, data, logs, config and Erlang cookie under one directory, so the shared broker on 5672 is never
touched. `rabbit_node` (a pytest fixture) starts one for a test and always stops it.

    async with RabbitNode(tmp_path) as node:
        ... node.amqp_url ...
        await node.stop_app(); await node.start_app()   # broker down and up again, the Erlang VM stays

The node runs as the current user straight from RabbitMQ's own scripts (not the Debian wrapper in /usr/sbin, which
switches to the rabbitmq user as root). HOME points at the node's directory, where its cookie lives, for the server
and for every `rabbitmqctl -n NODE` call alike, so the two always agree and neither reads ~/.erlang.cookie."""

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import aio_pika
import pytest

# RabbitMQ's scripts as installed by the Debian/Ubuntu package; elsewhere set RABBITMQ_SCRIPTS (or have them on PATH).
SCRIPTS = Path(os.environ.get("RABBITMQ_SCRIPTS", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT_S = 90.0  # a cold boot takes 5-10 s; far longer on a loaded 2-core machine
CTL_TIMEOUT_S = 60.0


def _script(name: str) -> str:
    path = SCRIPTS / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found in {SCRIPTS} or on PATH (set RABBITMQ_SCRIPTS)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RabbitNodeError(RuntimeError):
    pass


class RabbitNode:
    """One private RabbitMQ node. Every method that waits is bounded; `stop` always leaves no process behind."""

    def __init__(self, base: Path, name: str | None = None):
        self.base = Path(base)
        self.name = name or f"moteplass-test-{uuid.uuid4().hex[:10]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        self.process: subprocess.Popen | None = None
        self.log_dir = self.base / "log"
        self.env = self._prepare()

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _prepare(self) -> dict[str, str]:
        home = self.base / "home"
        for folder in (home, self.base / "mnesia", self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)  # Erlang refuses a cookie others may read
        # guest may sign in from loopback only (the default, stated so a reader need not know it); a low disk limit
        # so a nearly full test machine does not block publishers.
        config = self.base / "rabbitmq.conf"
        config.write_text("loopback_users.guest = true\ndisk_free_limit.absolute = 50MB\n"
                          "log.console = false\nlog.file.level = info\n")
        (self.base / "enabled_plugins").write_text("[].\n")  # no management listener to collide with the shared node's
        (self.base / "rabbitmq-env.conf").write_text("")  # nor /etc/rabbitmq/rabbitmq-env.conf's NODENAME
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("RABBITMQ_", "ERL_")) or key == "RABBITMQ_SCRIPTS"}
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.base / "rabbitmq.pid"),
            # The Erlang distribution on loopback only, like the shared node's.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> "RabbitNode":
        """Boot the node and wait until it accepts AMQP; on any failure the node is killed before raising."""
        if self.process is not None and self.process.poll() is None:
            raise RabbitNodeError(f"{self.name} is already running")
        stdout = open(self.log_dir / "stdout.log", "ab")
        try:
            self.process = subprocess.Popen(
                [_script("rabbitmq-server")], env=self.env, cwd=self.base, stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)  # its own group: kill takes all
        finally:
            stdout.close()
        try:
            await self.wait_amqp(timeout_s)
        except BaseException:
            self.kill()
            raise
        return self

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the node gracefully (`rabbitmqctl stop`), else kill it; afterwards no process of it is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                await self.ctl("stop", timeout_s=timeout_s)
                await asyncio.to_thread(self.process.wait, timeout_s)
            except (RabbitNodeError, subprocess.TimeoutExpired, TimeoutError, OSError):
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the node's whole process group (the start script and the Erlang VM): a crash, not a shutdown."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    async def stop_app(self) -> None:
        """Stop the RabbitMQ application (connections are closed, AMQP refused); the Erlang VM keeps running."""
        await self.ctl("stop_app")

    async def start_app(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the application again and wait until it accepts AMQP."""
        await self.ctl("start_app", timeout_s=timeout_s)
        await self.wait_amqp(timeout_s)

    async def ctl(self, *args: str, timeout_s: float = CTL_TIMEOUT_S) -> str:
        """Run `rabbitmqctl -n NODE args...` with the node's cookie; returns its output, raises if it failed."""
        process = await asyncio.create_subprocess_exec(
            _script("rabbitmqctl"), "-n", self.name, *args, env=self.env, cwd=self.base,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise RabbitNodeError(f"rabbitmqctl {' '.join(args)} failed ({process.returncode}): {text.strip()}")
        return text

    async def wait_amqp(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until a client can open a connection and a channel (the broker is really up, not just listening)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RabbitNodeError(f"{self.name} exited with {self.process.returncode}; see {self.log_dir}")
            try:
                connection = await asyncio.wait_for(aio_pika.connect(self.amqp_url), 5)
                try:
                    await connection.channel()
                finally:
                    await connection.close()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RabbitNodeError(f"{self.name} did not accept AMQP within {timeout_s:.0f} s "
                                          f"(last: {exc!r}); see {self.log_dir}") from exc
            await asyncio.sleep(0.25)

    async def __aenter__(self) -> "RabbitNode":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


@pytest.fixture
async def rabbit_node(tmp_path_factory):
    """A private RabbitMQ node, started for the test and stopped after it (also when the test fails)."""
    async with RabbitNode(tmp_path_factory.mktemp("rabbit")) as node:
        yield node
