"""Pages for people, behind every link the comments service mails: the comment in its thread, stopping reply
mails (one-click unsubscribe as RFC 8058 has it: the mail client POSTs, a GET only shows the button), and erasing
one's comments. Server-rendered, no JavaScript needed; they call the same use cases as the JSON routes, and the
signed token in the link authorises each (forms post back to the link)."""

from aiohttp import web

from shared.http import ApiError
from shared.messages.comments import CommentStatus
from shared.pages import Pages, language_of

from . import models
from .domain import Purpose, Sort, text
from .routes import COMMENTS

pages = Pages("services.comments")
routes = web.RouteTableDef()
page = pages.refusals_as_pages(ApiError)


@routes.get("/comments/{comment_id}")
@page
async def comment_in_thread(request: web.Request) -> web.Response:
    """The comment (if published) with the one it answers, then its thread, oldest first, a page at a time."""
    comments, language = request.app[COMMENTS], language_of(request)
    doc = await comments.found(request.match_info["comment_id"], language)
    shown = doc["status"] in (CommentStatus.approved, CommentStatus.deleted)
    parent = doc.get("parent_id") and await comments.store.get(doc["parent_id"])
    thread = models.Page.model_validate_json(await comments.page(
        doc["thread_id"], Sort.oldest, request.query.get("cursor"), None, language))
    return pages.render(
        "comment.html.j2", language, comment=models.public(doc, language) if shown else None,
        parent=models.public(parent, language) if parent and parent["status"] == CommentStatus.approved else None,
        thread=thread, comment_status=doc["status"])


@routes.route("*", "/comments/{comment_id}/unsubscribe")
@page
async def unsubscribe(request: web.Request) -> web.Response:
    """GET asks (a mail scanner opening the link changes nothing); POST — the page's button, or a mail client's
    one-click `List-Unsubscribe=One-Click` — stops the reply mails."""
    comments = request.app[COMMENTS]
    doc = await comments.found(request.match_info["comment_id"], language_of(request))
    language = language_of(request, doc.get("language"))
    token = request.query.get("token")
    if request.method == "POST":
        await comments.unsubscribe(str(doc["_id"]), token, language)
        return pages.render("unsubscribed.html.j2", language, message=text("unsubscribed", language))
    comments.token_subject(Purpose.unsubscribe, token, language, str(doc["_id"]))  # a wrong link says so now
    return pages.render("unsubscribe.html.j2", language)


@routes.route("*", "/erasure/confirm")
@page
async def erase(request: web.Request) -> web.Response:
    """GET tells how many comments the link would anonymise and asks; POST anonymises them."""
    comments, language = request.app[COMMENTS], language_of(request)
    token = request.query.get("token", "")
    if request.method == "POST":
        count = await comments.erase_by_link(token, language)
        return pages.render("erased.html.j2", language, count=count)
    preview = await comments.preview_erasure(token, language)
    return pages.render("erase.html.j2", language, count=preview.comments)
