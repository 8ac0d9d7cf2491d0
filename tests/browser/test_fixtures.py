"""The browser checks themselves: axe-core finds what it should, console errors and exceptions are recorded."""

import re

import pytest

from tests.support.browser import checked_page, record_errors

GOOD = """<!doctype html><html lang="nn"><head><meta charset="utf-8"><title>Påmelding</title></head>
<body><main><h1>Påmelding</h1><form><label for="n">Namn</label><input id="n" name="n">
<button>Meld på</button></form></main></body></html>"""


async def test_axe_passes_an_accessible_page(page, axe):
    await page.set_content(GOOD)
    await axe(page)


@pytest.mark.parametrize("flaw, rule", [
    (('<label for="n">Namn</label>', ""), "label"),
    (('lang="nn"', ""), "html-has-lang"),
    (("<h1>Påmelding</h1>", '<h1 style="color:#bbb;background:#fff">Påmelding</h1>'), "color-contrast"),
])
async def test_axe_finds_wcag_violations(page, axe, flaw, rule):
    await page.set_content(GOOD.replace(*flaw))
    with pytest.raises(AssertionError, match=rule):
        await axe(page)


@pytest.fixture
async def bare_page(browser):
    """A page without the `page` fixture's own check, to see what it records."""
    context = await browser.new_context()
    yield await context.new_page()
    await context.close()


async def test_console_errors_and_uncaught_exceptions_are_recorded(bare_page):
    errors = record_errors(bare_page)
    await bare_page.set_content("<script>console.warn('fine'); console.error('boom'); null.x</script>")
    assert len(errors) == 2 and "boom" in errors[0] and "uncaught exception" in errors[1], errors


async def test_a_failing_resource_is_recorded_but_an_error_document_is_not(bare_page):
    async def answer(route):
        if route.request.resource_type == "document":
            await route.fulfill(status=404, content_type="text/html", body=GOOD.replace(
                "</head>", '<link rel="stylesheet" href="/missing.css"><link rel="icon" href="data:,"></head>'))
        else:
            await route.fulfill(status=404, body="")

    await bare_page.route("http://pages.test/**", answer)
    errors = record_errors(bare_page)
    response = await bare_page.goto("http://pages.test/gone")
    assert response.status == 404
    assert errors[0] == "stylesheet http://pages.test/missing.css answered 404", errors
    assert all("missing.css" in error for error in errors), errors  # Chromium also reports the load as aborted


async def test_a_checked_page_fails_on_an_error_unless_it_is_tolerated(browser):
    with pytest.raises(pytest.fail.Exception, match="console error .*: boom"):
        async with checked_page(browser) as page:
            await page.set_content("<script>console.error('boom')</script>")
    async with checked_page(browser, tolerated=re.compile("boom")) as page:
        await page.set_content("<script>console.error('boom')</script>")
