"""What the browser tests check on every page: no console errors or uncaught exceptions, and no WCAG 2.1 AA
violation that axe-core (through axe-playwright-python) can find."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, ConsoleMessage, Error, Page, Request, Response

# The rules of WCAG 2.0 and 2.1, levels A and AA: what Norwegian public bodies' web pages must meet.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
_axe = Axe()


def record_errors(page: Page) -> list[str]:
    """A list that fills with every error the page logs to the console, every exception it does not catch, and
    every resource it loads (style, script, image, fetch) that fails or answers 4xx/5xx. The document itself may
    answer 4xx (an error page does, and is checked like any page), so Chromium's console line about a failed load
    is left to the response check, which knows what was loaded."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console error at {page.url}: {message.text}")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught exception at {page.url}: {error}")

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            errors.append(f"{response.request.resource_type} {response.url} answered {response.status}")

    def on_request_failed(request: Request) -> None:
        if request.resource_type != "document":
            errors.append(f"{request.resource_type} {request.url} failed: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    return errors


@asynccontextmanager
async def checked_page(browser: Browser, tolerated: re.Pattern | None = None, **context_options
                       ) -> AsyncIterator[Page]:
    """A fresh page in its own context (no cookies shared), Nynorsk as the browser's language unless
    `context_options` say otherwise. Once closed, the test fails if the page recorded an error (`record_errors`)
    that `tolerated` does not match."""
    context = await browser.new_context(**{"locale": "nn-NO", **context_options})
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        errors = record_errors(page)
        yield page
    finally:
        await context.close()
    errors = [error for error in errors if not (tolerated and tolerated.search(error))]
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


async def assert_accessible(page: Page, context: str | None = None) -> None:
    """axe-core finds no WCAG 2.1 AA violation on the page as it is now (or in the part `context` selects)."""
    results = await _axe.run(page, context=context, options={
        "runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]})
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"
