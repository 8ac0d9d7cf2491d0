"""docker-compose.yml is a valid Compose file that wires every service, port, dependency and setting the code
reads (no Docker engine runs here, so the file is checked against the Compose Specification's JSON Schema)."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from shared import tracing
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SPEC = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
APPS = {"registration": 8081, "comments": 8082, "notifications": 8083}
INFRA = {"mongo": [27017], "rabbitmq": [5672, 15672], "mailpit": [8025, 1025]}
# Settings whose defaults are right inside a container too (names, tuning, optional credentials, dev mode off).
DEFAULTS_FINE = {"db_prefix", "exchange", "queue_prefix", "max_attempts", "retry_delays_ms", "smtp_user",
                 "smtp_password", "smtp_security", "smtp_ca_file", "smtp_timeout_s", "jwt_jwks_url",
                 "relay_interval_s", "reminder_hours_before", "dev_mode", "dev_secret_file", "staff_link_minutes",
                 "staff_session_minutes"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def published(service: dict) -> set[int]:
    return {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}


def test_valid_against_the_compose_specification(compose):
    if not COMPOSE_SPEC.exists():
        pytest.skip(f"the Compose JSON Schema is not at {COMPOSE_SPEC} (it comes with ../shared)")
    schema = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(compose)


def test_every_service_is_there(compose):
    assert set(compose["services"]) == set(APPS) | set(INFRA)


def test_infrastructure(compose):
    services = compose["services"]
    assert services["mongo"]["image"].split(":")[0] == "mongo"
    assert int(services["mongo"]["image"].split(":")[1].split(".")[0]) >= 7
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo"]["healthcheck"]["test"])
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    for name, ports in INFRA.items():
        assert published(services[name]) == set(ports), name
        assert services[name]["healthcheck"]["test"], name


@pytest.mark.parametrize("name", APPS)
def test_app_service(compose, name):
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).exists()
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert published(service) == {APPS[name]}
    assert f"127.0.0.1:{APPS[name]}/readyz" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"] == {dep: {"condition": "service_healthy"} for dep in INFRA}


@pytest.mark.parametrize("name", APPS)
def test_every_setting_that_matters_is_wired(compose, name):
    env = compose["services"][name]["environment"]
    needed = {field.upper() for field in Settings.model_fields if field not in DEFAULTS_FINE}
    assert needed - set(env) == set(), f"{name} lacks settings: {sorted(needed - set(env))}"
    assert set(env) <= {field.upper() for field in Settings.model_fields} | set(tracing.ENVIRONMENT), \
        "a variable the code does not read"
    # What the container reads is what compose runs: its own port, and the other containers by name.
    assert Settings(**{k.lower(): v for k, v in env.items() if "${" not in v}).model_dump()[f"{name}_port"] == APPS[name]
    assert env["HOST"] == "0.0.0.0"
    assert "@rabbitmq:5672" in env["AMQP_URL"]
    assert env["MONGO_URL"].startswith("mongodb://mongo:27017") and "replicaSet=rs0" in env["MONGO_URL"]
    assert env["SMTP_HOST"] == "mailpit" and env["SMTP_PORT"] == "1025"
    for field, value in Settings.model_fields.items():
        if "127.0.0.1" in str(value.default) and field.upper() in env:
            assert "127.0.0.1" not in env[field.upper()], f"{field} points at the container itself"


def test_settings_not_exempted_without_reason():
    assert DEFAULTS_FINE <= set(Settings.model_fields), "DEFAULTS_FINE names a setting that no longer exists"


def test_the_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    user_lines = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in {"root", "0"}
    assert (ROOT / ".dockerignore").read_text().split().count(".venv") == 1
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert {"pyproject.toml", "shared", "services", "moteplass"} <= set(copied)
    assert all((ROOT / path).exists() for path in copied)
