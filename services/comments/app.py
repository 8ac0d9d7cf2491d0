"""Comments service: threads of comments per page or event, with moderation."""

from datetime import UTC, datetime, timedelta

from aiohttp import web

from shared.idempotency import ProcessedMessages
from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.runtime import RUNTIME, Runtime, create_service_app, run, settings_or_exit
from shared.settings import Settings, get_settings

from .pages import routes as pages
from .routes import COMMENTS, api
from .cache import ThreadCache
from .config import CommentsConfig
from .consumers import BINDINGS, erasure_handler
from .service import Comments
from .store import Store

SERVICE = "comments"
IP_SWEEP_S = 3600.0


def create_app(settings: Settings | None = None, config: CommentsConfig | None = None) -> web.Application:
    settings = settings or get_settings()
    config = config or CommentsConfig()

    async def setup(_: web.Application, runtime: Runtime) -> None:
        processed = ProcessedMessages(runtime.db, SERVICE)
        for indexes in (comments.store.ensure_indexes, comments.outbox.ensure_indexes, comments.limits.ensure_indexes,
                        processed.ensure_indexes):
            await indexes()
        await comments.outbox.sweep(grace=timedelta(0))  # what a previous process stored but did not publish
        runtime.every(runtime.settings.relay_interval_s, comments.outbox.sweep)
        runtime.every(IP_SWEEP_S, lambda: comments.store.forget_ips(
            datetime.now(UTC) - timedelta(days=config.ip_retention_days)))
        await runtime.bus.consume(SERVICE, BINDINGS, processed.once(erasure_handler(comments)))
        runtime.settle_before_stop(comments.published)

    app = create_service_app(SERVICE, settings, api=api, setup=setup)
    runtime = app[RUNTIME]
    store = Store(runtime.db)
    outbox = Outbox(runtime.bus, [store.comments, store.erasure_requests])
    comments = Comments(settings, config, store, outbox, ThreadCache(config.cache_ttl_s),
                        RateLimits(runtime.db["rate_limits"]))
    app[COMMENTS] = comments
    app.router.add_routes(pages)
    return app


def main() -> None:
    settings = settings_or_exit(SERVICE)
    run(create_app(settings), settings, SERVICE, settings.comments_port)
