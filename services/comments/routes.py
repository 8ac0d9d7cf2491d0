"""HTTP entrypoints of the comments service: public threads, the author's edit window, moderation. Each reads
the request (path, headers, language, client address) and hands it to a use case in service.py."""

from aiohttp import web

from shared.auth import Role, actor
from shared.http import Api, Reply
from shared.messages.common import Language
from shared.ratelimit import client_ip as shared_client_ip

from . import domain
from .domain import text
from .models import (
    THREAD_MAX, BulkModeration, CommentEdit, Counts, CountsQuery, Created, Edited, Erased, ErasurePreview,
    ErasureRequest, Imported, Message, Moderated, NewComment, Page, PageQuery, Queue, QueueQuery, SignedToken,
    ThreadChange, ThreadExport, ThreadImport, ThreadInfo,
)
from .service import Comments

api = Api("Møteplass comments", description="Comment threads per page or event, with pre-moderation. "
          "Public output never carries an email, an IP or a token.")
MODERATORS = {Role.moderator, Role.admin}


COMMENTS = web.AppKey("comments", Comments)
# A thread id is one path segment of at most THREAD_MAX characters; "counts" is taken by POST /threads/counts.
THREAD = f"{{thread:(?!counts$)[^/]{{1,{THREAD_MAX}}}}}"
NO_THREAD = {404: f"No such route: a thread id is one path segment of at most {THREAD_MAX} characters, not counts"}


def language(request: web.Request) -> Language:
    return domain.language_of(request.headers.get("Accept-Language"))


def client_ip(request: web.Request) -> str:
    return shared_client_ip(request, request.app[COMMENTS].settings.trusted_proxies)


def thread_id_of(request: web.Request) -> str:
    return request.match_info["thread"]  # its length is bounded by the route (THREAD)


# ---- public ----------------------------------------------------------------------------------------------------


@api.route("POST", f"/threads/{THREAD}/comments", body=NewComment, response=Created, status=201,
           errors={**NO_THREAD, 409: "The thread is closed, or the same text is already in it",
                   429: "Too many comments from this address (see Retry-After)"})
async def post_comment(request: web.Request, body: NewComment):
    """Write a comment or a reply (pre-moderated unless the thread says otherwise)."""
    return await request.app[COMMENTS].post(thread_id_of(request), body, ip=client_ip(request),
                                            language=language(request))


@api.route("GET", f"/threads/{THREAD}/comments", query=PageQuery, response=Page,
           errors={**NO_THREAD, 400: "Invalid cursor"})
async def get_comments(request: web.Request, query: PageQuery):
    """Approved comments (and placeholders of deleted ones with replies), top-level paged, replies nested."""
    body = await request.app[COMMENTS].page(thread_id_of(request), query.sort, query.cursor, query.limit,
                                            language(request))
    return web.Response(body=body, content_type="application/json")


@api.route("POST", "/threads/counts", body=CountsQuery, response=Counts)
async def thread_counts(request: web.Request, body: CountsQuery):
    """Approved comment counts for many threads at once (for list pages); a hidden thread counts 0."""
    return Counts(counts=await request.app[COMMENTS].counts(body.threads))


# ---- the author's edit window ----------------------------------------------------------------------------------


@api.route("PATCH", "/comments/{comment_id}", body=CommentEdit, response=Edited,
           errors={403: "Missing, wrong or expired X-Edit-Token", 404: "No such comment",
                   409: "The comment can no longer be changed, or the same text is already in the thread"})
async def edit_comment(request: web.Request, body: CommentEdit):
    """Edit your comment within the edit window (header X-Edit-Token)."""
    return await request.app[COMMENTS].edit(request.match_info["comment_id"], body.body,
                                            request.headers.get("X-Edit-Token"), language(request))


@api.route("DELETE", "/comments/{comment_id}", status=204,
           errors={403: "Missing, wrong or expired X-Edit-Token", 404: "No such comment"})
async def delete_own_comment(request: web.Request):
    """Delete your comment within the edit window (header X-Edit-Token)."""
    await request.app[COMMENTS].delete_own(request.match_info["comment_id"], request.headers.get("X-Edit-Token"),
                                           language(request))


# ---- erasure on the author's request -----------------------------------------------------------------------------


@api.route("POST", "/erasure/requests", body=ErasureRequest, response=Message, status=202,
           errors={429: "Too many requests from this address (see Retry-After)"})
async def request_erasure(request: web.Request, body: ErasureRequest):
    """Ask for a signed link, mailed to the address, that anonymises its comments (the answer never says whether
    the address has any)."""
    await request.app[COMMENTS].request_erasure(body.email, body.language, ip=client_ip(request),
                                                 language=language(request))
    return Reply(Message(message=text("erasure_requested", body.language)), status=202)


@api.route("GET", "/erasure", query=SignedToken, response=ErasurePreview, errors={403: "Invalid link"})
async def preview_erasure(request: web.Request, query: SignedToken):
    """What the signed link would anonymise (a GET changes nothing: mail scanners follow links)."""
    return await request.app[COMMENTS].preview_erasure(query.token, language(request))


@api.route("POST", "/erasure", body=SignedToken, response=Erased, errors={403: "Invalid link"})
async def erase(request: web.Request, body: SignedToken):
    """Anonymise the comments of the address the signed link was mailed to."""
    lang = language(request)
    return Erased(anonymised=await request.app[COMMENTS].erase_by_link(body.token, lang), message=text("erased", lang))


# ---- moderation ------------------------------------------------------------------------------------------------


@api.route("GET", "/moderation/comments", query=QueueQuery, response=Queue, roles=MODERATORS,
           errors={400: "Invalid cursor"})
async def moderation_queue(request: web.Request, query: QueueQuery, claims: dict):
    """Comments in a status (default pending) across threads, oldest first."""
    return await request.app[COMMENTS].queue(query, language(request))


@api.route("POST", "/moderation/comments", body=BulkModeration, response=Moderated, roles=MODERATORS)
async def moderate(request: web.Request, body: BulkModeration, claims: dict):
    """Approve, reject, mark as spam or delete comments in bulk."""
    return Moderated(results=await request.app[COMMENTS].moderate(body.ids, body.action, actor(claims)))


@api.route("PATCH", f"/threads/{THREAD}", body=ThreadChange, response=ThreadInfo, roles=MODERATORS,
           errors=NO_THREAD)
async def change_thread(request: web.Request, body: ThreadChange, claims: dict):
    """Close/open, hide/show a thread or set its moderation mode (pre or post)."""
    return await request.app[COMMENTS].change_thread(thread_id_of(request), body.model_dump(exclude_none=True),
                                                     actor(claims))


@api.route("GET", f"/threads/{THREAD}/export", response=ThreadExport, roles=MODERATORS, errors=NO_THREAD)
async def export_thread(request: web.Request, claims: dict):
    """A thread with all its comments (any status) as JSON, for backup or a move."""
    return await request.app[COMMENTS].export_thread(thread_id_of(request))


@api.route("POST", f"/threads/{THREAD}/import", body=ThreadImport, response=Imported, roles=MODERATORS,
           errors=NO_THREAD)
async def import_thread(request: web.Request, body: ThreadImport, claims: dict):
    """Add exported comments to a thread, as new ones; any already there (imported, exported from it) is skipped."""
    return await request.app[COMMENTS].import_thread(thread_id_of(request), body.comments, actor(claims))
