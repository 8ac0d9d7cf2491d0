"""Pages for people, behind every link the comments service mails: the comment in its thread, stopping reply
mails (one-click unsubscribe as RFC 8058 has it: the mail client POSTs, a GET only shows the button), and erasing
one's comments. Server-rendered, no JavaScript needed; they call the same use cases as the JSON routes, and the
signed token in the link authorises each (forms post back to the link). And the moderation page for staff,
behind the mailed-link sign-in."""

from datetime import timedelta
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from shared.auth import Role
from shared.http import ApiError
from shared.messages.comments import CommentStatus
from shared.messages.common import Language
from shared.pages import Pages, language_of
from shared.staff import SignIn

from . import models
from .domain import Action, Purpose, Sort, text
from .routes import COMMENTS, client_ip

pages = Pages("services.comments")
routes = web.RouteTableDef()
page = pages.refusals_as_pages(ApiError)


@routes.get("/comments/{comment_id}")
@page
async def comment_in_thread(request: web.Request) -> web.Response:
    """The comment (if published) with the one it answers, then its thread, oldest first, a page at a time."""
    comments, language = request.app[COMMENTS], language_of(request)
    comment = await comments.found(request.match_info["comment_id"], language)
    shown = comment.status in (CommentStatus.approved, CommentStatus.deleted)
    parent = await comments.parent(comment)
    thread = models.Page.model_validate_json(await comments.page(
        comment.thread_id, Sort.oldest, request.query.get("cursor"), None, language))
    return pages.render(
        "comment.html.j2", language, comment=models.public(comment, language) if shown else None,
        parent=models.public(parent, language) if parent and parent.status == CommentStatus.approved else None,
        thread=thread, comment_status=comment.status)


@routes.route("*", "/comments/{comment_id}/unsubscribe")
@page
async def unsubscribe(request: web.Request) -> web.Response:
    """GET asks (a mail scanner opening the link changes nothing); POST — the page's button, or a mail client's
    one-click `List-Unsubscribe=One-Click` — stops the reply mails."""
    comments = request.app[COMMENTS]
    comment = await comments.found(request.match_info["comment_id"], language_of(request))
    language = language_of(request, comment.language)
    token = request.query.get("token")
    if request.method == "POST":
        await comments.unsubscribe(comment.id, token, language)
        return pages.render("unsubscribed.html.j2", language, message=text("unsubscribed", language))
    comments.token_subject(Purpose.unsubscribe, token, language, comment.id)  # a wrong link says so now
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

# ---- moderation (staff) ----------------------------------------------------------------------------------------
# For moderators and admins signed in by a mailed link (shared.staff): the queue across threads (approve, reject,
# mark as spam or delete one or many) and thread settings (close or hide).

SIGN_IN = web.AppKey("sign_in", SignIn)
MODERATORS = {Role.moderator, Role.admin}
HOME = "/moderation"
SIGN_INS_PER_MINUTE = 5
# What a thread form's button does to the thread.
THREAD_CHANGES = {"close": {"closed": True}, "open": {"closed": False}, "hide": {"hidden": True},
                  "show": {"hidden": False}}


async def limit_sign_ins(request: web.Request) -> None:
    await request.app[COMMENTS].limit(f"sign-in:{client_ip(request)}", SIGN_INS_PER_MINUTE, timedelta(minutes=1),
                                      Language.nn)


def _back(**query) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{HOME}?{urlencode({k: v for k, v in query.items() if v})}")


async def queue(request: web.Request) -> web.Response:
    request.app[SIGN_IN].require(request, MODERATORS)
    try:
        query = models.QueueQuery.model_validate({k: v for k, v in request.query.items() if k in ("status", "cursor")})
        found = await request.app[COMMENTS].queue(query, Language.nn)
    except (ValidationError, ApiError):
        raise _back() from None
    return request.app[SIGN_IN].page(
        request, "moderation.html.j2", query=query, queue=found, statuses=list(CommentStatus),
        done=request.query.get("done", ""), count=int(request.query.get("n", "0") or 0) if
        request.query.get("n", "").isdigit() else 0, thread=request.query.get("thread", "")[:models.THREAD_MAX])


async def moderate(request: web.Request) -> web.Response:
    sign_in = request.app[SIGN_IN]
    staff = sign_in.require(request, MODERATORS)
    form = await sign_in.form(request, staff)
    ids = form.get("id", [])
    ids = [ids] if isinstance(ids, str) else ids
    status = form.get("status", CommentStatus.pending.value)
    if form.get("action") not in Action.__members__ or not ids:
        raise _back(status=status, done="none")
    results = await request.app[COMMENTS].moderate(ids, Action(form["action"]), staff.email)
    changed = sum(result not in ("unchanged", "not_found") for result in results.values())
    raise _back(status=status, done=form["action"], n=str(changed))


async def change_thread(request: web.Request) -> web.Response:
    sign_in = request.app[SIGN_IN]
    staff = sign_in.require(request, MODERATORS)
    form = await sign_in.form(request, staff)
    thread, change = str(form.get("thread", "")).strip(), form.get("change")
    if not thread or len(thread) > models.THREAD_MAX or change not in THREAD_CHANGES:
        raise _back(done="no_thread")
    await request.app[COMMENTS].change_thread(thread, THREAD_CHANGES[change], staff.email)
    raise _back(done=change, thread=thread)


def install_moderation(app: web.Application) -> None:
    guard = app[SIGN_IN].guard
    app.router.add_get(HOME, guard(queue))
    app.router.add_post(HOME, guard(moderate))
    app.router.add_post(f"{HOME}/thread", guard(change_thread))
