"""The page behind the unsubscribe link in reminder mails (the List-Unsubscribe header names it): one-click
unsubscribe as RFC 8058 has it — the mail client POSTs (`List-Unsubscribe=One-Click`) and that unsubscribes; a GET
(a person, or a mail scanner opening the link) shows a button and changes nothing."""

from aiohttp import web

from shared.http import ApiError
from shared.pages import Pages, language_of
from shared.runtime import RUNTIME
from shared.settings import KeyPurpose

from . import domain
from .routes import NOTIFIER

pages = Pages("services.notifications")
routes = web.RouteTableDef()
page = pages.refusals_as_pages(ApiError)


@routes.route("*", "/unsubscribe")
@page
async def unsubscribe(request: web.Request) -> web.Response:
    try:
        email, topic, language = domain.read_unsubscribe_token(
            request.query.get("token", ""), request.app[RUNTIME].settings.key(KeyPurpose.unsubscribe))
    except ValueError as exc:
        raise ApiError(400, pages.text(language_of(request), "link_wrong")) from exc
    if request.method == "POST":
        await request.app[NOTIFIER].unsubscribe(email, topic)
        return pages.render("unsubscribed.html.j2", language)
    return pages.render("unsubscribe.html.j2", language)
