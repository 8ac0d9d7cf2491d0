"""The pages' texts: every text a template asks for exists in nn, nb and en, and the layout escapes what it shows."""

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pymongo.errors import ServerSelectionTimeoutError
from services.registration.domain import OrganisationType, Status
from shared.http import ApiError
from shared.messages import Language
from shared.pages import Pages

SERVICES = ("services.registration", "services.comments", "services.notifications")
ROOT = Path(__file__).resolve().parents[2]


def asked_for(pages: Pages, package: str) -> set[str]:
    """The text keys the package's page templates (and the shared ones) ask for with t("…")."""
    folders = [ROOT / package.replace(".", "/") / "templates", ROOT / "shared" / "templates"]
    keys = set()
    for folder in folders:
        for template in folder.glob("*.j2"):
            keys |= set(re.findall(r'\bt\("([a-z_]+)"', template.read_text("utf-8")))
    return keys


@pytest.mark.parametrize("package", SERVICES)
def test_every_text_a_page_asks_for_exists_in_every_language(package):
    pages = Pages(package)
    # A key ending in "_" is completed in the template (t("status_" ~ status)): some text must start with it.
    missing = {key for key in asked_for(pages, package)
               if key not in pages.texts and not (key.endswith("_") and any(k.startswith(key) for k in pages.texts))}
    assert not missing, missing
    incomplete = {key for key, texts in pages.texts.items() if set(texts) != {lang.value for lang in Language}}
    assert not incomplete, incomplete


def test_pages_escape_what_they_show_and_keep_secret_links_to_themselves():
    response = Pages("services.notifications").error(Language.en, 410, "<script>alert(1)</script>", "Try again")
    assert "<script>alert" not in response.text and "&lt;script&gt;" in response.text
    assert '<html lang="en">' in response.text and response.status == 410
    assert response.headers["Referrer-Policy"] == "no-referrer" and response.headers["Cache-Control"] == "no-store"


def test_every_status_a_registration_can_be_in_while_its_link_works_and_every_organisation_type_has_a_text():
    texts = Pages("services.registration").texts
    assert {s.value for s in Status if s != Status.erased} <= {k.removeprefix("status_") for k in texts}
    assert {f"org_{t.name}" for t in OrganisationType} <= set(texts)


@pytest.mark.parametrize("raised, status", [
    (ApiError(404, "Fann ikkje påmeldinga."), 404), (ApiError(409, "Møteplassen er full."), 409),
    (ServerSelectionTimeoutError("no store"), 503), (RuntimeError("a bug"), 500)])
async def test_a_page_answers_every_failure_as_a_page_in_the_readers_language(raised, status):
    pages = Pages("services.notifications")

    @pages.refusals_as_pages(ApiError)
    async def handler(request):
        raise raised

    response = await handler(make_mocked_request("GET", "/x", headers={"Accept-Language": "en-GB,en;q=0.8"}))
    assert response.status == status and response.content_type == "text/html"
    assert '<html lang="en">' in response.text
    assert ("Retry-After" in response.headers) == (status == 503)
    if status == 409:
        assert "Møteplassen er full." in response.text


async def test_a_redirect_from_a_page_passes_through():
    @Pages("services.notifications").refusals_as_pages(ApiError)
    async def handler(request):
        raise web.HTTPSeeOther("/done")

    with pytest.raises(web.HTTPSeeOther):
        await handler(make_mocked_request("POST", "/x"))
