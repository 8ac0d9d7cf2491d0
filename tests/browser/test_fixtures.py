"""The browser checks themselves: axe-core finds what it should, console errors and exceptions are recorded."""

import pytest

from tests.support.browser import record_errors

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


async def test_console_errors_and_uncaught_exceptions_are_recorded(browser):
    context = await browser.new_context()
    try:
        page = await context.new_page()
        errors = record_errors(page)
        await page.set_content("<script>console.warn('fine'); console.error('boom'); null.x</script>")
        assert len(errors) == 2 and "boom" in errors[0] and "uncaught exception" in errors[1], errors
    finally:
        await context.close()
