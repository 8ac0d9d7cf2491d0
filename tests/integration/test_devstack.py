"""The `make run` helpers: the store starts, keeps its data across a restart, the broker check is clear, and the
stack stops its children cleanly."""

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from moteplass import demo_page, devstack
from shared.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration


async def test_the_store_starts_and_keeps_its_data_across_a_restart(tmp_path):
    port = free_port()
    url = f"mongodb://127.0.0.1:{port}"
    for run, expected in ((1, []), (2, ["Innovasjonsjam"])):
        process = devstack.start_store(tmp_path / "mongo", port, tmp_path / "nx.log")
        try:
            await devstack.wait_for_store(url)
            client = AsyncMongoClient(url)
            titles = [doc["title"] async for doc in client.moteplass_dev.events.find()]
            assert titles == expected, f"run {run}"
            if run == 1:
                await client.moteplass_dev.events.insert_one({"title": "Innovasjonsjam"})
            await client.close()
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_waiting_for_a_store_that_is_not_there_fails_clearly():
    url = f"mongodb://127.0.0.1:{free_port()}"
    with pytest.raises(devstack.DevStackError, match="did not answer"):
        await devstack.wait_for_store(url, timeout_s=0.5)


async def test_ensure_broker_uses_a_running_broker(amqp_url):
    await devstack.ensure_broker(amqp_url)
    assert await devstack.broker_reachable(amqp_url)


async def test_no_broker_and_none_installed_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(devstack, "rabbitmq_server", lambda: None)
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with pytest.raises(devstack.DevStackError, match="apt-get install rabbitmq-server"):
        await devstack.ensure_broker(url)


def test_only_services_that_exist_are_started():
    assert "comments" in devstack.available_services()
    assert set(devstack.available_services()) <= set(devstack.SERVICES)


async def test_children_are_stopped_while_this_loop_keeps_serving_them():
    """A service that says goodbye to the mail sink (on the dev stack's own loop) as it stops is answered, and so
    exits by itself rather than being killed after the wait."""
    async def goodbye(reader, writer):
        await reader.readline()
        writer.write(b"221 bye\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(goodbye, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = subprocess.Popen([sys.executable, "-c", f"""
import signal, socket, sys, time
def stop(*_):
    with socket.create_connection(("127.0.0.1", {port})) as s:
        s.sendall(b"QUIT\\n")
        s.settimeout(20)
        sys.exit(0 if s.recv(100).startswith(b"221") else 3)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        started = time.monotonic()
        await devstack.stop([devstack.Child("service", child)])
        assert child.returncode == 0 and time.monotonic() - started < 5
    finally:
        child.kill()
        server.close()


def test_the_demo_page_may_call_the_services_and_a_dev_admin_may_sign_in():
    env = devstack.dev_environment({"PATH": "/bin"}, "http://127.0.0.1:8080")
    assert json.loads(env["CORS_ORIGINS"]) == ["http://127.0.0.1:8080"]
    assert json.loads(env["ADMINS"]) == [devstack.DEV_ADMIN]
    # What the environment says wins.
    own = devstack.dev_environment({"CORS_ORIGINS": '["https://www.baerum.kommune.no"]', "ADMINS": "[]"}, "x")
    assert (own["CORS_ORIGINS"], own["ADMINS"]) == ('["https://www.baerum.kommune.no"]', "[]")


async def test_the_demo_page_loads_the_widgets_from_the_services():
    port = free_port()
    settings = Settings(public_base_url="http://127.0.0.1:18081", comments_public_url="http://127.0.0.1:18082")
    runner = await devstack.serve_demo(settings, port)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as resp:
            page = await resp.text()
        assert '<script src="http://127.0.0.1:18081/embed.js" defer>' in page
        assert '<script src="http://127.0.0.1:18082/embed.js" defer>' in page
        assert all(f'event="{slug}"' in page for slug in demo_page.EVENTS) and "<moteplass-comments" in page
    finally:
        await runner.cleanup()
