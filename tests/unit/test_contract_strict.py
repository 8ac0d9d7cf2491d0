"""A subscriber's strict validator accepts the published schemas: ajv 8 (JSON Schema 2020-12) in strict mode, which
refuses unknown keywords, compiles every schema once the README's declarations are made (x-personal-data,
ajv-formats) — and refuses them without, so the check is real. Personal data is listed where the README and the
AsyncAPI document say."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from moteplass import contract

ROOT = Path(__file__).resolve().parents[2]
AJV = ["ajv@8.17.1", "ajv-formats@3.0.1"]
SCHEMAS = sorted(str(ROOT / message.schema_path) for message in contract.message_types())


@pytest.fixture(scope="session")
def ajv_modules() -> Path:
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "node and npm are needed to check the schemas with ajv, as subscribers do"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moteplass-tests" / "ajv"
    if not (cache / "node_modules" / "ajv-formats").exists():
        subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(cache), *AJV],
                       check=True, timeout=300)
    return cache / "node_modules"


def strict(ajv_modules: Path, *args: str, messages: list | None = None) -> list[str]:
    out = subprocess.run(["node", str(ROOT / "tests" / "support" / "validate_strict.mjs"), *args],
                         input=json.dumps(messages or []), capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "AJV_MODULES": str(ajv_modules)})
    return json.loads(out.stdout)


def test_every_schema_compiles_in_strict_mode_with_the_documented_declarations(ajv_modules):
    assert strict(ajv_modules, *SCHEMAS) == []


def test_strict_mode_refuses_them_undeclared(ajv_modules):
    refused = strict(ajv_modules, "--undeclared", *SCHEMAS)
    assert len(refused) == len(SCHEMAS) and all("x-personal-data" in e or "format" in e for e in refused)


def test_ajv_and_our_validator_agree_on_a_message(ajv_modules):
    schema = str(ROOT / "docs" / "schemas" / "registration.erased.v1.json")
    message = {"specversion": "1.0", "id": "e1", "source": "/moteplass/registration", "type":
               "no.moteplass.registration.erased.v1", "time": "2026-11-29T12:00:00Z", "subject": None,
               "datacontenttype": "application/json", "correlationid": "r1",
               "data": {"registration_id": "r", "event_slug": "s", "email": "kari@example.no", "reason": "request",
                        "a_field_from_a_later_producer": 1}}
    assert strict(ajv_modules, schema, messages=[{"schema": schema, "message": message}]) == []
    message["data"]["email"] = "not an address"
    assert strict(ajv_modules, schema, messages=[{"schema": schema, "message": message}]) != []


def test_personal_data_is_listed_in_the_readme_and_the_asyncapi_document():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    document = yaml.safe_load((ROOT / contract.ASYNCAPI).read_text(encoding="utf-8"))
    for message in contract.message_types():
        [row] = [line for line in readme.splitlines() if line.startswith(f"| [`{message.routing_key}`]")]
        listed = document["components"]["messages"][message.routing_key.replace(".", "-")]["x-personal-data"]
        for path in message.personal_fields:
            assert f"`{path}`" in row and path in listed, (message.routing_key, path)
    [submitted] = [message for message in contract.message_types() if message.routing_key == "comment.submitted.v1"]
    assert "data.moderator_emails[]" in submitted.personal_fields
