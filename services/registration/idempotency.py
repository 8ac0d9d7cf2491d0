"""`Idempotency-Key` on every POST: the same key and body get the first response replayed (for
REGISTRATION_IDEMPOTENCY_HOURS); the same key with another body is a 422; while the first is still in flight, a
409. Only finished answers below 500 are kept, so a failed attempt can simply be retried."""

from datetime import UTC, datetime, timedelta

from aiohttp import web

from shared.http import ApiError

from . import domain
from .store import Store

HEADER = "Idempotency-Key"
STORE = web.AppKey("idempotency_store", Store)
KEEP = web.AppKey("idempotency_keep", timedelta)
# An in-flight record older than this was left by a crashed process: the key may be used again.
LEASE_S = 60


@web.middleware
async def idempotency(request: web.Request, handler) -> web.StreamResponse:
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return await handler(request)
    if not 1 <= len(key) <= 255:
        raise ApiError(422, "Idempotency-Key må vere mellom 1 og 255 teikn.",
                       [{"field": HEADER, "message": "Ugyldig lengd."}])
    store = request.app[STORE]
    record_id = domain.fingerprint(request.path, key)
    fingerprint = domain.fingerprint(request.query_string, await request.read())
    prior = await store.begin_request(record_id, fingerprint, datetime.now(UTC) + request.app[KEEP], LEASE_S)
    if prior is not None:
        first = domain.replay(prior, fingerprint)
        return web.Response(status=first["status"], text=first["body"], content_type=first["content_type"],
                            headers={"Idempotent-Replayed": "true"})
    try:
        response = await handler(request)
    except BaseException:
        await store.abandon_request(record_id)
        raise
    if isinstance(response, web.Response) and response.status < 500:
        await store.complete_request(record_id, {"status": response.status, "body": response.text or "",
                                                 "content_type": response.content_type})
    else:
        await store.abandon_request(record_id)
    return response
