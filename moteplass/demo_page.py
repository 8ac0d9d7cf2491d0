"""The demo page `make run` serves: the seed's page (Difi's two møteplassar of 2016) rebuilt from the widgets,
`<moteplass-registration>` and `<moteplass-comments>`, loaded from the services as any municipality's site would."""

from pathlib import Path
from string import Template

from aiohttp import web

PAGE = Path(__file__).with_name("static") / "demo.html"
EVENTS = ("innovasjonsjam-baerum", "innovasjonsworkshop-sarpsborg")


def app(registration_url: str, comments_url: str) -> web.Application:
    html = Template(PAGE.read_text(encoding="utf-8")).substitute(
        registration=registration_url.rstrip("/"), comments=comments_url.rstrip("/"))

    async def demo(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    application = web.Application()
    application.router.add_get("/", demo)
    return application
