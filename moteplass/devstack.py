"""`make run`: the whole system on one machine with embedded defaults — nx-27017 as the MongoDB stand-in
(data under .data/), the local RabbitMQ, the dev mail sink and the three services, stopped together on Ctrl-C."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aio_pika
from pymongo import AsyncMongoClient

from shared.settings import Settings

SERVICES = ("registration", "comments", "notifications")


class DevStackError(RuntimeError):
    pass


async def wait_for_store(url: str, timeout_s: float = 30) -> None:
    client = AsyncMongoClient(url, serverSelectionTimeoutMS=500)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                await client.admin.command("ping")
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise DevStackError(f"the store at {url} did not answer within {timeout_s:.0f} s") from None
                await asyncio.sleep(0.2)
    finally:
        await client.close()


def start_store(data_dir: Path, port: int, log_file: Path) -> subprocess.Popen:
    """Start nx-27017 (MongoDB wire protocol on SQLite) with its data in data_dir."""
    exe = shutil.which("nx-27017") or str(Path(sys.executable).with_name("nx-27017"))
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "--data-dir", str(data_dir), "-p", str(port), "--log-file", str(log_file),
         "--pid-file", str(data_dir / "nx-27017.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)


async def broker_reachable(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=3)
    except Exception:
        return False
    await connection.close()
    return True


async def ensure_broker(url: str, timeout_s: float = 90) -> None:
    """Use the broker at url; start a local rabbitmq-server if one is installed but stopped."""
    if await broker_reachable(url):
        return
    server = shutil.which("rabbitmq-server") or ("/usr/sbin/rabbitmq-server" if Path("/usr/sbin/rabbitmq-server").exists() else None)
    if server is None:
        raise DevStackError(
            f"RabbitMQ is not reachable at {url} and rabbitmq-server is not installed. Install it "
            "(e.g. `apt-get install rabbitmq-server`), or point AMQP_URL at a running broker.")
    subprocess.run([server, "-detached"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await broker_reachable(url):
        if asyncio.get_running_loop().time() > deadline:
            raise DevStackError(f"started rabbitmq-server, but it did not answer at {url} within {timeout_s:.0f} s")
        await asyncio.sleep(1)


def _port_of(url: str, default: int) -> int:
    tail = url.rsplit(":", 1)[-1].split("/")[0]
    return int(tail) if tail.isdigit() else default


async def run(root: Path) -> None:
    settings = Settings()
    env = dict(os.environ)
    data = root / ".data"
    data.mkdir(exist_ok=True)
    children: list[tuple[str, subprocess.Popen]] = []
    urls = []
    try:
        if "MONGO_URL" not in os.environ:
            port = _port_of(settings.mongo_url, 27017)
            children.append(("store", start_store(data / "mongo", port, data / "nx-27017.log")))
            urls.append(("store (nx-27017)", settings.mongo_url))
        await wait_for_store(settings.mongo_url)
        await ensure_broker(settings.amqp_url)
        urls.append(("broker", settings.amqp_url.replace("guest:guest@", "")))
        if "SMTP_HOST" not in os.environ:
            children.append(("mailsink", subprocess.Popen(
                [sys.executable, "-m", "moteplass.cli", "mailsink", "--smtp-port", str(settings.smtp_port)], env=env)))
            urls.append(("mail sink (Mailpit API)", "http://127.0.0.1:8025/api/v1/messages"))
        for service in SERVICES:
            children.append((service, subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=env)))
            urls.append((service, f"http://{settings.host}:{getattr(settings, f'{service}_port')}"))
        width = max(len(name) for name, _ in urls)
        print("\nMøteplass is starting:", *(f"  {name:<{width}}  {url}" for name, url in urls),
              "Admin token: .venv/bin/moteplass token --role admin", "Ctrl-C stops everything.", sep="\n", flush=True)
        while all(child.poll() is None for _, child in children):
            await asyncio.sleep(0.5)
        dead = [name for name, child in children if child.poll() is not None]
        raise DevStackError(f"{', '.join(dead)} stopped; stopping the rest")
    finally:
        for _, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGINT if _ != "store" else signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
