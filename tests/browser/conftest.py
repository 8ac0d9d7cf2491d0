"""Browser tests: Playwright drives Debian's Chromium (`apt-get install chromium`, which `make test` does as root;
Playwright's own browser download is never used), and axe-core checks each page against WCAG 2.1 AA. A missing
browser fails the tests loudly; they are never skipped."""

import os
import re
import shutil

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.support.browser import assert_accessible, checked_page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
async def browser() -> Browser:
    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (`apt-get install chromium`; "
                    "`make test` does it when run as root) or set CHROMIUM to its path", pytrace=False)
    async with async_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to start as root, as tests run in CI containers.
        browser = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        await browser.close()


@pytest.fixture
def tolerated_errors() -> re.Pattern | None:
    """What the `page` may report without failing its test: nothing, unless a module overrides this fixture."""
    return None


@pytest.fixture
async def page(browser, tolerated_errors) -> Page:
    """A fresh page in its own context, Nynorsk as the browser's language. The test fails if the page logs an error
    to the console, throws, or a load fails."""
    async with checked_page(browser, tolerated_errors) as page:
        yield page


@pytest.fixture(scope="session")
def axe():
    """`await axe(page)` asserts that axe-core finds no WCAG 2.1 AA violation on the page as it is now."""
    return assert_accessible
