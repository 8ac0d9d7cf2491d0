"""The pages' texts: every text a template asks for exists in nn, nb and en, and the layout escapes what it shows."""

import re
from pathlib import Path

import pytest
from services.registration.domain import Status
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


def test_every_status_a_registration_can_be_in_while_its_link_works_has_a_text():
    texts = Pages("services.registration").texts
    assert {s.value for s in Status if s != Status.erased} <= {k.removeprefix("status_") for k in texts}
