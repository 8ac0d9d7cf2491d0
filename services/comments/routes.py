"""HTTP entrypoints of the comments service: public threads, the author's edit window, moderation."""

from datetime import UTC, datetime, timedelta

from aiohttp import web
from pymongo.errors import DuplicateKeyError

from shared.auth import Role
from shared.http import Api, ApiError, Reply
from shared.messages import make_event
from shared.messages.comments import CommentErasureRequested, CommentStatus
from shared.messages.common import Language
from shared.ratelimit import client_ip as shared_client_ip

from . import domain, models, store
from .config import CommentsConfig
from .domain import Action, BadCursor, BadToken, Purpose, Sort, text
from .models import (
    BulkModeration, CommentEdit, Counts, CountsQuery, Created, Edited, Erased, ErasurePreview, ErasureRequest,
    Imported, Message, Moderated, NewComment, Page, PageQuery, Queue, QueueQuery, QueuedComment, SignedToken,
    ThreadChange, ThreadExport, ThreadImport, ThreadInfo
)
from .service import SOURCE, Comments

api = Api("Møteplass comments", description="Comment threads per page or event, with pre-moderation. "
          "Public output never carries an email, an IP or a token.")
MODERATORS = {Role.moderator, Role.admin}


COMMENTS = web.AppKey("comments", Comments)


def language(request: web.Request) -> Language:
    return domain.language_of(request.headers.get("Accept-Language"))


def client_ip(request: web.Request, config: CommentsConfig) -> str:
    return shared_client_ip(request, config.trust_forwarded_for)


def thread_id_of(request: web.Request) -> str:
    thread_id = request.match_info["thread"]
    if len(thread_id) > models.THREAD_MAX:
        raise ApiError(404, text("thread_not_found", language(request)))
    return thread_id


async def limit(ctx: Comments, request: web.Request, key: str, allowed: int, window: timedelta) -> None:
    await ctx.limits.enforce(key, allowed, window, text("rate", language(request)))


async def found(ctx: Comments, request: web.Request) -> dict:
    doc = await ctx.store.get(request.match_info["comment_id"])
    if doc is None:
        raise ApiError(404, text("not_found", language(request)))
    return doc


def token_subject(ctx: Comments, request: web.Request, purpose: Purpose, token: str | None,
                  subject: str | None = None) -> str:
    try:
        return domain.verify(ctx.secret, purpose, token, subject)
    except BadToken as exc:
        raise ApiError(403, text("token", language(request))) from exc


# ---- public ----------------------------------------------------------------------------------------------------


@api.route("POST", "/threads/{thread}/comments", body=NewComment, response=Created, status=201,
           errors={409: "The thread is closed, or the same text is already in it",
                   429: "Too many comments from this address (see Retry-After)"})
async def post_comment(request: web.Request, body: NewComment):
    """Write a comment or a reply (pre-moderated unless the thread says otherwise)."""
    ctx, lang, thread_id = request.app[COMMENTS], language(request), thread_id_of(request)
    config, ip = ctx.config, client_ip(request, ctx.config)
    await limit(ctx, request, f"post:{ip}", config.posts_per_minute, timedelta(minutes=1))
    thread = await ctx.thread(thread_id)
    if thread is not None and (thread.get("closed") or thread.get("hidden")):
        raise ApiError(409, text("closed", lang))
    if thread is None:
        await limit(ctx, request, f"thread:{ip}", config.new_threads_per_hour, timedelta(hours=1))
        await ctx.store.ensure_thread(thread_id)
        ctx.cache.drop(thread_id)
    parent = None
    if body.parent_id is not None:
        parent = await ctx.store.get(body.parent_id)
        if parent is None or parent["thread_id"] != thread_id or parent["status"] != CommentStatus.approved:
            raise ApiError(422, "Nokre felt er ikkje rett utfylte.", [
                {"field": "parent_id", "message": text("parent_not_found", lang), "type": "parent_not_found"}])
    honeypot = bool(body.website.strip())
    known = config.auto_approve_known and not honeypot and await ctx.store.known_author(body.email)
    status, held = domain.initial_status(
        moderation=(thread or {}).get("moderation", "pre"), links=domain.count_links(body.body),
        max_links=config.max_links, honeypot=honeypot, known_author=known,
        auto_approve_known=config.auto_approve_known)
    now = datetime.now(UTC)
    # A bot resubmitting its text should not learn it was caught: its catches take no fingerprint.
    doc = domain.comment_doc(thread_id, body, identity=store.identity(now), parent=parent, max_depth=config.max_depth,
                             status=status, ip=ip, now=now, fingerprinted=not honeypot)
    # Honeypot catches are silent.
    event = None if honeypot else await ctx.status_event(doc, request, held, parent)
    if not await ctx.insert(doc, [event] if event else []):
        raise ApiError(409, text("duplicate", lang))
    await ctx.count_reply(doc, was=None, now=status)
    if doc["listed"]:
        ctx.cache.drop(thread_id)
    ctx.publish_soon(doc)
    edit_until = now + timedelta(minutes=config.edit_minutes)
    shown = CommentStatus.pending if honeypot else status
    return Created(id=str(doc["_id"]), status=shown, html=doc["html"], message=text(f"thanks_{shown}", lang),
                   edit_token=domain.sign(ctx.secret, Purpose.edit, str(doc["_id"]), edit_until - now, now),
                   edit_until=edit_until)


@api.route("GET", "/threads/{thread}/comments", query=PageQuery, response=Page,
           errors={400: "Invalid cursor"})
async def get_comments(request: web.Request, query: PageQuery):
    """Approved comments (and placeholders of deleted ones with replies), top-level paged, replies nested."""
    ctx, lang, thread_id = request.app[COMMENTS], language(request), thread_id_of(request)
    size = query.limit or ctx.config.page_size

    async def build() -> bytes:
        # The cursor is decoded only here: a cached page is served without even that (a bad one is never cached).
        after = store.after(query.sort, query.cursor)
        info = models.thread_info(thread_id, await ctx.thread(thread_id))
        roots = [] if info.hidden else await ctx.store.page(thread_id, query.sort, after, size + 1)
        more = len(roots) > size
        roots = roots[:size]
        # Only comments with replies (counted, or kept as placeholders) need the one query for replies.
        replies = await ctx.store.descendants(
            [str(r["_id"]) for r in roots if r.get("reply_count") or r["status"] == CommentStatus.deleted])
        page = Page(thread=info, comments=models.nest(roots, replies, ctx.config.nested_limit, lang),
                    next_cursor=domain.encode_cursor(query.sort, roots[-1]) if more else None)
        return page.model_dump_json().encode()

    try:
        body = await ctx.cache.get(thread_id, (query.sort, query.cursor, size, lang), build)
    except BadCursor as exc:
        raise ApiError(400, text("cursor", lang)) from exc
    return web.Response(body=body, content_type="application/json")


@api.route("POST", "/threads/counts", body=CountsQuery, response=Counts)
async def thread_counts(request: web.Request, body: CountsQuery):
    """Approved comment counts for many threads at once (for list pages); a hidden thread counts 0."""
    store = request.app[COMMENTS].store
    found_counts, hidden = await store.counts(body.threads), await store.hidden_threads(body.threads)
    return Counts(counts={t: 0 if t in hidden else found_counts.get(t, 0) for t in body.threads})


# ---- the author's edit window ----------------------------------------------------------------------------------


@api.route("PATCH", "/comments/{comment_id}", body=CommentEdit, response=Edited,
           errors={403: "Missing, wrong or expired X-Edit-Token", 404: "No such comment",
                   409: "The comment can no longer be changed, or the same text is already in the thread"})
async def edit_comment(request: web.Request, body: CommentEdit):
    """Edit your comment within the edit window (header X-Edit-Token)."""
    ctx, lang = request.app[COMMENTS], language(request)
    doc = await found(ctx, request)
    token_subject(ctx, request, Purpose.edit, request.headers.get("X-Edit-Token"), str(doc["_id"]))
    if doc["status"] not in (CommentStatus.pending, CommentStatus.approved):
        raise ApiError(409, text("gone", lang))
    changes = {"body": body.body, "html": domain.render(body.body), "edited_at": datetime.now(UTC),
               "fingerprint": domain.fingerprint(body.body)}
    thread = await ctx.thread(doc["thread_id"]) or {}
    status, held = domain.status_after_edit(
        doc["status"], moderation=thread.get("moderation", "pre"), links=domain.count_links(body.body),
        max_links=ctx.config.max_links, auto_approve_known=ctx.config.auto_approve_known)
    events = []
    if status != doc["status"]:
        changes |= {"status": status, "listed": domain.listed(status, False)}
        events.append(await ctx.status_event({**doc, **changes}, request, held))
    try:
        updated = await ctx.store.update(doc["_id"], {"status": doc["status"]}, changes, events)
    except DuplicateKeyError as exc:
        raise ApiError(409, text("duplicate", lang)) from exc
    if updated is None:
        raise ApiError(409, text("gone", lang))
    await ctx.count_reply(doc, was=doc["status"], now=updated["status"])
    ctx.cache.drop(doc["thread_id"])
    ctx.publish_soon(updated)
    return Edited(id=str(doc["_id"]), status=updated["status"], html=updated["html"])


@api.route("DELETE", "/comments/{comment_id}", status=204,
           errors={403: "Missing, wrong or expired X-Edit-Token", 404: "No such comment"})
async def delete_own_comment(request: web.Request):
    """Delete your comment within the edit window (header X-Edit-Token)."""
    ctx = request.app[COMMENTS]
    doc = await found(ctx, request)
    token_subject(ctx, request, Purpose.edit, request.headers.get("X-Edit-Token"), str(doc["_id"]))
    if doc["status"] != CommentStatus.deleted and await ctx.apply(doc, Action.delete, request, by="author") is None:
        raise ApiError(409, text("gone", language(request)))


@api.route("GET", "/comments/{comment_id}/unsubscribe", query=SignedToken, response=Message,
           errors={403: "Invalid link", 404: "No such comment"})
async def unsubscribe(request: web.Request, query: SignedToken):
    """Turn off reply mails for a comment (the signed link in a reply notice)."""
    ctx = request.app[COMMENTS]
    doc = await found(ctx, request)
    token_subject(ctx, request, Purpose.unsubscribe, query.token, str(doc["_id"]))
    await ctx.store.update(doc["_id"], {}, {"notify_replies": False}, [])
    return Message(message=text("unsubscribed", language(request)))


# ---- erasure on the author's request -----------------------------------------------------------------------------


@api.route("POST", "/erasure/requests", body=ErasureRequest, response=Message, status=202,
           errors={429: "Too many requests from this address (see Retry-After)"})
async def request_erasure(request: web.Request, body: ErasureRequest):
    """Ask for a signed link, mailed to the address, that anonymises its comments (the answer never says whether
    the address has any)."""
    ctx = request.app[COMMENTS]
    await limit(ctx, request, f"erasure:{client_ip(request, ctx.config)}", ctx.config.posts_per_minute,
                timedelta(minutes=1))
    if count := await ctx.store.count_by_email(body.email):
        expires_at = datetime.now(UTC) + domain.ERASE_LINK_TTL
        token = domain.sign(ctx.secret, Purpose.erase, body.email, domain.ERASE_LINK_TTL)
        event = make_event(CommentErasureRequested(
            email=body.email, language=body.language, comment_count=count, expires_at=expires_at,
            erase_url=f"{ctx.settings.public_base_url}/erasure?token={token}"), source=SOURCE,
            correlation_id=request.headers.get("X-Request-Id"))
        ctx.publish_soon(await ctx.store.request_erasure(event), ctx.store.erasure_requests)
    return Reply(Message(message=text("erasure_requested", body.language)), status=202)


@api.route("GET", "/erasure", query=SignedToken, response=ErasurePreview, errors={403: "Invalid link"})
async def preview_erasure(request: web.Request, query: SignedToken):
    """What the signed link would anonymise (a GET changes nothing: mail scanners follow links)."""
    ctx = request.app[COMMENTS]
    email = token_subject(ctx, request, Purpose.erase, query.token)
    return ErasurePreview(comments=await ctx.store.count_by_email(email),
                          message=text("erasure_preview", language(request)))


@api.route("POST", "/erasure", body=SignedToken, response=Erased, errors={403: "Invalid link"})
async def erase(request: web.Request, body: SignedToken):
    """Anonymise the comments of the address the signed link was mailed to."""
    ctx = request.app[COMMENTS]
    email = token_subject(ctx, request, Purpose.erase, body.token)
    return Erased(anonymised=await ctx.erase(email), message=text("erased", language(request)))


# ---- moderation ------------------------------------------------------------------------------------------------


@api.route("GET", "/moderation/comments", query=QueueQuery, response=Queue, roles=MODERATORS,
           errors={400: "Invalid cursor"})
async def moderation_queue(request: web.Request, query: QueueQuery, claims: dict):
    """Comments in a status (default pending) across threads, oldest first."""
    ctx = request.app[COMMENTS]
    try:
        after = store.after(Sort.oldest, query.cursor)
    except BadCursor as exc:
        raise ApiError(400, text("cursor", language(request))) from exc
    docs = await ctx.store.queue(query.status, after, query.limit + 1)
    items = [QueuedComment(id=str(d["_id"]), thread_id=d["thread_id"],
                           parent_id=d.get("parent_id"),
                           **{k: d.get(k) for k in ("author_name", "email", "body", "html", "status", "created_at")})
             for d in docs[:query.limit]]
    more = len(docs) > query.limit
    return Queue(comments=items, next_cursor=domain.encode_cursor(Sort.oldest, docs[query.limit - 1]) if more else None)


@api.route("POST", "/moderation/comments", body=BulkModeration, response=Moderated, roles=MODERATORS)
async def moderate(request: web.Request, body: BulkModeration, claims: dict):
    """Approve, reject, mark as spam or delete comments in bulk."""
    ctx = request.app[COMMENTS]
    results: dict[str, str] = {}
    for comment_id in dict.fromkeys(body.ids):
        doc = await ctx.store.get(comment_id)
        if doc is None:
            results[comment_id] = "not_found"
            continue
        updated = await ctx.apply(doc, body.action, request)
        results[comment_id] = updated["status"] if updated else "unchanged"
    return Moderated(results=results)


@api.route("PATCH", "/threads/{thread}", body=ThreadChange, response=ThreadInfo, roles=MODERATORS)
async def change_thread(request: web.Request, body: ThreadChange, claims: dict):
    """Close/open, hide/show a thread or set its moderation mode (pre or post)."""
    ctx, thread_id = request.app[COMMENTS], thread_id_of(request)
    thread = await ctx.store.change_thread(thread_id, body.model_dump(exclude_none=True))
    ctx.cache.drop(thread_id)
    return models.thread_info(thread_id, thread)



@api.route("GET", "/threads/{thread}/export", response=ThreadExport, roles=MODERATORS)
async def export_thread(request: web.Request, claims: dict):
    """A thread with all its comments (any status) as JSON, for backup or a move."""
    ctx, thread_id = request.app[COMMENTS], thread_id_of(request)
    docs = await ctx.store.thread_comments(thread_id)
    return ThreadExport(thread=models.thread_info(thread_id, await ctx.store.thread(thread_id)),
                        comments=[models.exported(d) for d in docs])


@api.route("POST", "/threads/{thread}/import", body=ThreadImport, response=Imported, roles=MODERATORS)
async def import_thread(request: web.Request, body: ThreadImport, claims: dict):
    """Add exported comments to a thread (new ids; the same text twice is skipped, so a re-import adds nothing)."""
    ctx, thread_id = request.app[COMMENTS], thread_id_of(request)
    docs = domain.imported(thread_id, body.comments, ctx.config.max_depth, store.identity)
    await ctx.store.ensure_thread(thread_id)
    count = sum(await ctx.store.insert_many([(doc, []) for doc in docs]))
    ctx.cache.drop(thread_id)
    return Imported(imported=count, skipped=len(docs) - count)
