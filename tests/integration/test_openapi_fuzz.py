"""Schemathesis over each service's /openapi.json, as a client with an admin token and as one without: every
check on, a bounded number of examples per operation. No input gives a 5xx, every answer matches the document
(status code, headers, content type, schema), and what the document refuses the service refuses."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from services.notifications.app import create_app as notifications_app
from services.registration.app import create_app as registration_app
from services.registration.config import RegistrationConfig
from shared.auth import Role, issue_token

ST = Path(sys.executable).with_name("st")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("FUZZ_SEED", "10")  # fixed, so a run is repeatable; set another to explore further

APPS = {
    # Limits no burst of the fuzzer reaches (the limits have tests of their own).
    "registration": lambda s: registration_app(s, RegistrationConfig(posts_per_minute=100_000)),
    "comments": lambda s: comments_app(s, CommentsConfig(posts_per_minute=100_000, new_threads_per_hour=100_000)),
    "notifications": notifications_app,
}

# The one reviewed list of what the fuzzer leaves out, each with its reason: (service, method, path, check).
# positive_data_acceptance expects every request that fits the schema to be accepted; these routes also apply
# rules no JSON Schema states, and refuse with a documented 4xx.
ACROSS_FIELDS = "Rules across fields: the end after the start, registration closing after it opens and before the start"
DELIVERABLE = "The address must be deliverable: a special-use domain (.test, .invalid, …) fits `format: email` but not"
CURSOR = "The cursor is opaque: any base64url text fits the schema, only one the service gave out is accepted (400)"
EXCLUDED: dict[tuple[str, str, str, str], str] = {
    ("registration", "POST", "/events", "positive_data_acceptance"): ACROSS_FIELDS,
    ("registration", "PATCH", "/events/{slug}", "positive_data_acceptance"): ACROSS_FIELDS,
    ("registration", "POST", "/events/{slug}/registrations", "positive_data_acceptance"):
        f"{DELIVERABLE}; answers must fit the møteplass's own questions",
    ("registration", "POST", "/registrations/{id}/guest-invites", "positive_data_acceptance"): DELIVERABLE,
    ("comments", "POST", "/erasure/requests", "positive_data_acceptance"): DELIVERABLE,
    ("comments", "POST", "/threads/{thread}/comments", "positive_data_acceptance"): DELIVERABLE,
    ("comments", "POST", "/threads/{thread}/import", "positive_data_acceptance"): DELIVERABLE,
    ("comments", "GET", "/threads/{thread}/comments", "positive_data_acceptance"): CURSOR,
    ("comments", "GET", "/moderation/comments", "positive_data_acceptance"): CURSOR,
    # The same path also serves the comment's HTML page (GET, pages.py), which the JSON API's document leaves out.
    ("comments", "PATCH", "/comments/{comment_id}", "allow_header_conformance"):
        "GET is the comment's page (HTML), not part of the JSON API",
    ("comments", "DELETE", "/comments/{comment_id}", "allow_header_conformance"):
        "GET is the comment's page (HTML), not part of the JSON API",
}


def config_file(service: str, path: Path) -> Path:
    """EXCLUDED as schemathesis configuration."""
    path.write_text("".join(
        f'[[operations]]\ninclude-path = "{route}"\ninclude-method = "{method}"\nchecks.{check}.enabled = false\n\n'
        for (name, method, route, check) in EXCLUDED if name == service))
    return path


@pytest.mark.parametrize("role", ["anonymous", "admin"])
@pytest.mark.parametrize("service", list(APPS))
async def test_every_route_answers_as_its_openapi_document_says(start_service, settings, tmp_path, service, role):
    base = await start_service(APPS[service], service)
    headers = ["-H", f"Authorization: Bearer {issue_token(settings, Role.admin)}"] if role == "admin" else []
    command = [str(ST), "--config-file", str(config_file(service, tmp_path / "schemathesis.toml")), "run",
               f"{base}/openapi.json", "--max-examples", str(EXAMPLES),
               "--seed", SEED, "--generation-database", "none", "--no-color", "--workers", "1",
               "--request-timeout", "10", "--phases", "examples,coverage,fuzzing", *headers]
    # Run in the test's own directory: schemathesis keeps a cache of crashes where it runs.
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode(errors="replace")[-20000:]
