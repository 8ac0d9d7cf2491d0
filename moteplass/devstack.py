"""`make run`: the whole system on one machine with embedded defaults — nx-27017 as the MongoDB stand-in
(data under .data/), the local RabbitMQ, the dev mail sink, the three services with the seed's møteplassar loaded,
and the demo page that embeds their widgets, stopped together on Ctrl-C."""

import asyncio
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiohttp
from aiohttp import web
from pymongo import AsyncMongoClient
from pymongo.uri_parser import parse_uri

from shared.settings import Settings

from . import demo_page
from .mailsink import MailSink

SERVICES = ("registration", "comments", "notifications")
MAILSINK_HTTP_PORT = 8025
DEMO_PORT = 8080
# Who may sign in to the staff pages on the dev stack (the link arrives in the mail sink), unless ADMINS says.
DEV_ADMIN = "admin@example.no"
# Ctrl-C, `kill` and a closed terminal all stop the stack the same way (handled even where SIGINT was ignored).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevStackError(RuntimeError):
    pass


async def store_reachable(url: str) -> bool:
    client = AsyncMongoClient(url, serverSelectionTimeoutMS=500)
    try:
        await client.admin.command("ping")
        return True
    except Exception:
        return False
    finally:
        await client.close()


async def wait_for_store(url: str, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await store_reachable(url):
        if asyncio.get_running_loop().time() > deadline:
            raise DevStackError(f"the store at {url} did not answer within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None  # loaded here: the child may not take locks


def _die_with_parent() -> None:
    if _LIBC is not None:  # PR_SET_PDEATHSIG: no orphan survives a parent that was killed outright
        _LIBC.prctl(1, signal.SIGTERM)


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    """A child in its own session, so a Ctrl-C in the terminal reaches only the dev stack, which then stops the
    children in order (services before the store they write to); it dies with its parent."""
    return subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kwargs)


def start_store(data_dir: Path, port: int, log_file: Path) -> subprocess.Popen:
    """Start nx-27017 (MongoDB wire protocol on SQLite) with its data in data_dir."""
    exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return spawn([exe, "--data-dir", str(data_dir), "-p", str(port), "--log-file", str(log_file),
                  "--pid-file", str(data_dir / "nx-27017.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


async def broker_reachable(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


def rabbitmq_server() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("rabbitmq-server") or shutil.which("rabbitmq-server", path="/usr/sbin:/usr/local/sbin")


async def ensure_broker(url: str, timeout_s: float = 90) -> None:
    """Use the broker at url; start a local rabbitmq-server if one is installed but stopped."""
    if await broker_reachable(url):
        return
    server = rabbitmq_server()
    if server is None:
        raise DevStackError(
            f"RabbitMQ is not reachable at {url} and rabbitmq-server is not installed. Install it "
            "(e.g. `sudo apt-get install rabbitmq-server`), run one in Docker "
            "(`docker run -d -p 5672:5672 rabbitmq:3-management`), or point AMQP_URL at a running broker.")
    subprocess.run([server, "-detached"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await broker_reachable(url):
        if asyncio.get_running_loop().time() > deadline:
            raise DevStackError(f"started {server}, but it did not answer at {url} within {timeout_s:.0f} s")
        await asyncio.sleep(1)


def available_services() -> list[str]:
    """The services whose app exists (others are still being written) — each is started on its own."""
    return [s for s in SERVICES if importlib.util.find_spec(f"services.{s}.app") is not None]


@dataclass
class Child:
    name: str
    process: subprocess.Popen


async def wait_healthy(url: str, children: list[Child], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            check_alive(children)
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise DevStackError(f"{url} did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)


def check_alive(children: list[Child]) -> None:
    dead = [f"{c.name} (exit code {c.process.returncode})" for c in children if c.process.poll() is not None]
    if dead:
        raise DevStackError(f"{', '.join(dead)} stopped; stopping the rest (see the output above)")


async def stop(children: list[Child]) -> None:
    """SIGTERM: every child shuts down cleanly on it (aiohttp finishes its requests and runs its cleanup). Waited
    for in a thread: what runs on this loop (the mail sink) must keep answering while the children say goodbye."""
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()
    await asyncio.to_thread(_wait_or_kill, children)


def _wait_or_kill(children: list[Child]) -> None:
    for child in children:
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def dev_environment(environ: dict[str, str], demo_origin: str) -> dict[str, str]:
    """The services' environment on the dev stack: the demo page may call them, and a dev admin may sign in to the
    staff pages — unless the environment says otherwise."""
    env = {**environ, "PYTHONUNBUFFERED": "1"}
    if "CORS_ORIGINS" not in env:
        env["CORS_ORIGINS"] = json.dumps(sorted(set(Settings().cors_origins) | {demo_origin}))
    env.setdefault("ADMINS", json.dumps([DEV_ADMIN]))
    return env


async def serve_demo(settings: Settings, port: int) -> web.AppRunner:
    """The demo page, on this loop: the seed's page rebuilt from the widgets the services serve."""
    runner = web.AppRunner(demo_page.app(settings.public_base_url, settings.comments_public_url), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise DevStackError(f"the demo page cannot listen on port {port} ({exc.strerror})") from None
    return runner


async def load_demo(env: dict[str, str]) -> str:
    """`moteplass demo` (the seed's two møteplassar; running it again changes nothing); its last line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "moteplass.cli", "demo", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise DevStackError(f"`moteplass demo` failed:\n{output.decode(errors='replace')}")
    return output.decode(errors="replace")


async def run(root: Path) -> None:
    # Dev mode: without JWT_SECRET the services share the random secret made for this checkout on first use
    # (.data/jwt-secret, made here before they start), and /metrics is open.
    settings = Settings(dev_mode=True)
    settings.secret()
    demo_origin = f"http://127.0.0.1:{DEMO_PORT}"
    env = dev_environment({**os.environ, "DEV_MODE": "true"}, demo_origin)
    demo: web.AppRunner | None = None
    data = root / ".data"
    data.mkdir(exist_ok=True)
    store: list[Child] = []  # the nx-27017 we started, if any
    services: list[Child] = []
    sink = MailSink()
    urls: list[tuple[str, str]] = []
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signalled = []

    def on_signal(signum: signal.Signals) -> None:
        signalled.append(signum)
        main_task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if "MONGO_URL" in os.environ or await store_reachable(settings.mongo_url):
            urls.append(("store", settings.mongo_url))
        else:
            port = parse_uri(settings.mongo_url)["nodelist"][0][1]
            store.append(Child("store", start_store(data / "mongo", port, data / "nx-27017.log")))
            urls.append(("store (nx-27017, data in .data/mongo)", settings.mongo_url))
        await wait_for_store(settings.mongo_url)
        await ensure_broker(settings.amqp_url)
        urls.append(("broker", settings.amqp_url.replace("guest:guest@", "")))
        if "SMTP_HOST" not in os.environ:
            try:  # in this process: it is asyncio too, and needs nothing else to start
                await sink.start("127.0.0.1", settings.smtp_port, MAILSINK_HTTP_PORT)
            except OSError as exc:
                raise DevStackError(f"the mail sink cannot listen on ports {settings.smtp_port} and "
                                    f"{MAILSINK_HTTP_PORT} ({exc.strerror}); set SMTP_HOST to use another server") from None
            urls.append(("mail sink (Mailpit API)", f"http://127.0.0.1:{MAILSINK_HTTP_PORT}/api/v1/messages"))
        names = available_services()
        missing = sorted(set(SERVICES) - set(names))
        for name in names:
            services.append(Child(name, spawn([sys.executable, "-m", f"services.{name}"], env=env)))
        for name in names:
            base = f"http://{settings.host}:{getattr(settings, f'{name}_port')}"
            await wait_healthy(f"{base}/healthz", store + services)
            urls.append((name, f"{base}  (/openapi.json, /readyz, /metrics)"))
        if "registration" in names:
            await load_demo(env)
            demo = await serve_demo(settings, DEMO_PORT)
            urls.append(("demo page (the seed's page)", f"{demo_origin}/"))
        if {"registration", "comments"} <= set(names):
            urls.append(("staff pages", f"{settings.public_base_url}/door  {settings.comments_public_url}/moderation"
                                        f"  (sign in as {', '.join(json.loads(env['ADMINS'])) or 'one of ADMINS'})"))
        width = max(len(name) for name, _ in urls)
        print("\nMøteplass is running:", *(f"  {name:<{width}}  {url}" for name, url in urls),
              *([f"  not started (no services/<name>/app.py yet): {', '.join(missing)}"] if missing else []),
              "Admin token: .venv/bin/moteplass token --role admin", "Ctrl-C stops everything.", sep="\n", flush=True)
        while True:
            check_alive(store + services)
            await asyncio.sleep(0.5)
    except asyncio.CancelledError:
        if not signalled:
            raise
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        # Services first (they finish their work), then the mail sink, the store they write to last.
        if demo is not None:
            await demo.cleanup()
        await stop(services)
        await sink.stop()
        await stop(store)
        print(f"\nStopped: {', '.join(c.name for c in services + store) or 'nothing was running'}.", flush=True)
