"""Issue #10, the parts every service shares, tried from outside as an attacker or a careless client would: no
service without a secret of its own, one key per purpose, JSON only and never too deep, claims of the wrong type,
/metrics behind its token."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import aiohttp
import jwt
import pytest

from services.comments.app import create_app as comments_app
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from shared.settings import KNOWN_SECRETS, KeyPurpose

pytestmark = pytest.mark.integration

APPS = {"registration": registration_app, "comments": comments_app, "notifications": notifications_app}
# Settings a test's child process must not inherit from whoever runs the tests.
OWN_SETTINGS = ("JWT_SECRET", "DEV_MODE", "DEV_SECRET_FILE", "METRICS_TOKEN")


def child_env(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k.upper() not in OWN_SETTINGS}
    return {**env, "LOG_LEVEL": "WARNING", **settings}


async def operations(http: aiohttp.ClientSession, base: str) -> list[tuple[str, str, dict]]:
    """(method, path with its parameters filled in, operation) of every route in the service's OpenAPI."""
    async with http.get(f"{base}/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    return [(method.upper(), "/".join("x" if p.startswith("{") else p for p in path.split("/")), op)
            for path, item in paths.items() for method, op in item.items()]


@pytest.fixture
async def services(start_service):
    """Base URL of each service, all three running."""
    return {name: await start_service(create, name) for name, create in APPS.items()}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("service, secret, says", [
    ("registration", None, "JWT_SECRET is not set"),
    ("comments", sorted(KNOWN_SECRETS)[-1], "JWT_SECRET is a published default"),
    ("notifications", "too-short", "JWT_SECRET is shorter than 32 bytes")])
def test_no_service_starts_outside_dev_mode_without_a_secret_of_its_own(tmp_path, service, secret, says):
    env = child_env(**({"JWT_SECRET": secret} if secret else {}))
    done = subprocess.run([sys.executable, "-m", f"services.{service}"], env=env, cwd=tmp_path,  # no .env there
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"{service} does not start: {says}" in done.stderr and "JWT_SECRET=$(" in done.stderr
    assert "Traceback" not in done.stderr


async def test_in_dev_mode_a_service_uses_the_checkout_s_secret_and_moteplass_token_signs_with_it(
        settings, tmp_path, http):
    secret_file = tmp_path / ".data" / "jwt-secret"
    port = settings.registration_port
    env = child_env(MONGO_URL=settings.mongo_url, AMQP_URL=settings.amqp_url, DB_PREFIX=settings.db_prefix,
                    EXCHANGE=settings.exchange, QUEUE_PREFIX=settings.queue_prefix, REGISTRATION_PORT=str(port),
                    DEV_SECRET_FILE=str(secret_file))
    service = subprocess.Popen([sys.executable, "-m", "services.registration"], env={**env, "DEV_MODE": "true"},
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            assert service.poll() is None, "the service stopped"
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        token = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "moteplass.cli", "token"], env=env,
                                        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
        admin = {"Authorization": f"Bearer {token.stdout.strip()}"}
        async with http.get(f"{base}/events/nowhere/counts", headers=admin) as resp:
            assert resp.status == 404, await resp.text()  # past the token check: the møteplass is not there
        async with http.get(f"{base}/events/nowhere/counts") as resp:
            assert resp.status == 401
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200  # open in dev mode
        assert len(secret_file.read_text().strip()) >= 32
    finally:
        service.terminate()
        await asyncio.to_thread(service.wait, 30)


async def test_a_token_made_for_one_purpose_passes_for_no_other(settings, services, http, admin_headers):
    comments, registration = services["comments"], services["registration"]
    async with http.post(f"{comments}/threads/side/comments",
                         json={"author_name": "Kari", "email": "kari@example.no", "body": "Takk!"}) as resp:
        assert resp.status == 201, await resp.text()
        created = await resp.json()
    soon = datetime.now(UTC) + timedelta(hours=1)
    forged = {
        "an edit token": created["edit_token"],
        "signed with JWT_SECRET itself": jwt.encode({"role": "admin", "exp": soon}, settings.secret(), "HS256"),
        "signed with a published default": jwt.encode({"role": "admin", "exp": soon}, sorted(KNOWN_SECRETS)[0],
                                                      "HS256"),
        "signed with the unsubscribe key": jwt.encode({"role": "admin", "exp": soon},
                                                      settings.key(KeyPurpose.unsubscribe), "HS256"),
    }
    for what, token in forged.items():
        for url in (f"{registration}/events/nowhere/counts", f"{comments}/moderation/comments"):
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 401, f"{what} at {url}"
    # The other way round: an admin token, or an edit token's claims signed with the admin key, edits nothing.
    edit_claims_with_admin_key = jwt.encode({"sub": created["id"], "purpose": "edit", "exp": soon},
                                            settings.key(KeyPurpose.bearer), "HS256")
    for token in (admin_headers["Authorization"].removeprefix("Bearer "), edit_claims_with_admin_key):
        async with http.patch(f"{comments}/comments/{created['id']}", json={"body": "Endra"},
                              headers={"X-Edit-Token": token}) as resp:
            assert resp.status == 403
    async with http.patch(f"{comments}/comments/{created['id']}", json={"body": "Endra"},
                          headers={"X-Edit-Token": created["edit_token"]}) as resp:
        assert resp.status == 200  # while its own token still edits


async def test_every_json_route_refuses_deep_json_with_400_and_other_content_types_with_415(
        services, http, admin_headers):
    deep = ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, '{"a":' * 40 + "1" + "}" * 40]
    tried = []
    for name, base in services.items():
        for method, path, op in await operations(http, base):
            if "requestBody" not in op:
                continue
            tried.append(f"{method} {path}")
            for body in deep:
                async with http.request(method, f"{base}{path}", data=body, headers={
                        **admin_headers, "Content-Type": "application/json"}) as resp:
                    assert resp.status == 400, f"{name} {method} {path}: {await resp.text()}"
                    assert "for djupt" in (await resp.json())["error"]["message"]
            for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                 "application/octet-stream"):
                async with http.request(method, f"{base}{path}", data=b'{"name": "x"}', headers={
                        **admin_headers, "Content-Type": content_type}) as resp:
                    assert resp.status == 415, f"{name} {method} {path} as {content_type}: {await resp.text()}"
                    assert "application/json" in (await resp.json())["error"]["message"]
    assert len(tried) >= 10, tried  # the OpenAPI documents carry the routes (registration's and comments')


async def test_a_signed_token_with_claims_of_the_wrong_type_is_401_on_every_protected_route(
        settings, services, http):
    soon = datetime.now(UTC) + timedelta(hours=1)
    tokens = [jwt.encode({**claims, "exp": soon}, settings.key(KeyPurpose.bearer), "HS256")
              for claims in ({"role": ["admin"]}, {"role": {"admin": 1}}, {"role": 1}, {"role": "admin", "sub": 7})]
    protected = 0
    for name, base in services.items():
        for method, path, op in await operations(http, base):
            if "security" not in op:
                continue
            protected += 1
            for token in tokens:
                async with http.request(method, f"{base}{path}", json={}, headers={
                        "Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 401, f"{name} {method} {path}: {await resp.text()}"
    assert protected >= 10


async def test_metrics_answer_only_the_metrics_token(settings, start_service, http, metrics_headers):
    base = await start_service(comments_app, "comments")
    async with http.get(f"{base}/metrics", headers=metrics_headers) as resp:
        assert resp.status == 200 and "http_requests_total" in await resp.text()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": metrics_headers["Authorization"] + "x"}):
        async with http.get(f"{base}/metrics", headers=headers) as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
            assert "METRICS_TOKEN" in (await resp.json())["error"]["message"]
    unset = await start_service(registration_app, "registration",
                                app_settings=settings.model_copy(update={"metrics_token": None}))
    async with http.get(f"{unset}/metrics", headers=metrics_headers) as resp:
        assert resp.status == 404  # no token configured: metrics are off
