"""What the browser tests check on every page: no console errors or uncaught exceptions, and no WCAG 2.1 AA
violation that axe-core (through axe-playwright-python) can find."""

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import ConsoleMessage, Error, Page

# The rules of WCAG 2.0 and 2.1, levels A and AA: what Norwegian public bodies' web pages must meet.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
_axe = Axe()


def record_errors(page: Page) -> list[str]:
    """A list that fills with every error the page logs to the console and every exception it does not catch."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console error at {page.url}: {message.text}")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught exception at {page.url}: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return errors


async def assert_accessible(page: Page, context: str | None = None) -> None:
    """axe-core finds no WCAG 2.1 AA violation on the page as it is now (or in the part `context` selects)."""
    results = await _axe.run(page, context=context, options={
        "runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]})
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"
