"""Comments service: threads of comments per page or event, with moderation."""

from datetime import timedelta
from pathlib import Path

from aiohttp import web

from shared import embed
from shared.auth import Role
from shared.messages.comments import ModeratorSignInRequested
from shared.idempotency import ProcessedMessages
from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.runtime import RUNTIME, Runtime, create_service_app, run, settings_or_exit
from shared.settings import Settings, get_settings
from shared.staff import SignIn

from . import pages
from .routes import COMMENTS, api
from .cache import ThreadCache
from .config import CommentsConfig
from .consumers import BINDINGS, erasure_handler
from .service import Comments
from .store import Store

SERVICE = "comments"
IP_SWEEP_S = 3600.0
STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings | None = None, config: CommentsConfig | None = None) -> web.Application:
    settings = settings or get_settings()
    config = config or CommentsConfig()

    async def setup(app: web.Application, runtime: Runtime) -> None:
        processed = ProcessedMessages(runtime.db, SERVICE)
        for indexes in (comments.store.ensure_indexes, comments.outbox.ensure_indexes, comments.limits.ensure_indexes,
                        processed.ensure_indexes):
            await indexes()
        await comments.outbox.sweep(grace=timedelta(0))  # what a previous process stored but did not publish
        runtime.every(runtime.settings.relay_interval_s, comments.outbox.sweep)
        runtime.every(IP_SWEEP_S, comments.forget_ips)
        await runtime.bus.consume(SERVICE, BINDINGS, processed.once(erasure_handler(comments)))
        runtime.settle_before_stop(comments.published)
        await app[pages.SIGN_IN].start(runtime)

    def widget(app: web.Application) -> None:
        """The widget script, beside the API (open to the sites in CORS_ORIGINS like the API)."""
        embed.install(app, STATIC / "embed.js")

    app = create_service_app(SERVICE, settings, api=api, setup=setup, routes=widget)
    runtime = app[RUNTIME]
    listed = {**dict.fromkeys(config.moderators, Role.moderator), **dict.fromkeys(settings.admins, Role.admin)}
    sign_in = app[pages.SIGN_IN] = SignIn(
        runtime, public_url=settings.comments_public_url, listed=listed, message=ModeratorSignInRequested,
        home=pages.HOME, limit=pages.limit_sign_ins, pages=pages.pages)
    sign_in.install(app)
    pages.install_moderation(app)
    store = Store(runtime.db)
    outbox = Outbox(runtime.bus, [store.comments, store.erasure_requests])
    comments = Comments(settings, config, store, outbox, ThreadCache(config.cache_ttl_s),
                        RateLimits(runtime.db["rate_limits"]))
    app[COMMENTS] = comments
    app.router.add_routes(pages.routes)
    return app


def main() -> None:
    settings = settings_or_exit(SERVICE)
    run(create_app(settings), settings, SERVICE, settings.comments_port)
