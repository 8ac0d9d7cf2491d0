"""Registration service: møteplassar and registrations with atomic seats, a waiting list and an outbox."""

from datetime import timedelta
from pathlib import Path

from aiohttp import web

from shared import embed
from shared.auth import Role
from shared.messages.registration import StaffSignInRequested
from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.runtime import RUNTIME, Runtime, create_service_app, run, settings_or_exit
from shared.settings import Settings, get_settings
from shared.staff import SignIn

from .config import RegistrationConfig
from .service import Registrations
from . import pages
from .routes import CONFIG, RATE_LIMITS, REGISTRATIONS, api, rate_limit, refusals
from .idempotency import KEEP as IDEMPOTENCY_KEEP
from .idempotency import STORE as IDEMPOTENCY_STORE
from .idempotency import idempotency
from .store import Store

SERVICE = "registration"
STATIC = Path(__file__).with_name("static")


async def build(runtime: Runtime, config: RegistrationConfig) -> Registrations:
    """The service's flows over its store and outbox (a started runtime: the bus is connected)."""
    store = Store(runtime.db)
    await store.ensure_indexes()
    outbox = Outbox(runtime.bus, [store.events, store.registrations, store.invites])
    await outbox.ensure_indexes()
    return Registrations(store, outbox, runtime.settings, runtime.bus.source,
                         timedelta(hours=config.confirmation_valid_hours), timedelta(seconds=config.orphan_after_s))


async def setup(app: web.Application, runtime: Runtime, config: RegistrationConfig) -> None:
    registrations = app[REGISTRATIONS] = await build(runtime, config)
    await app[RATE_LIMITS].ensure_indexes()
    app[IDEMPOTENCY_STORE] = registrations.store
    app[IDEMPOTENCY_KEEP] = timedelta(hours=config.idempotency_hours)
    outbox = registrations.outbox
    # Whatever a crashed process left: finish its flows, then publish what they recorded.
    await registrations.reconcile(timedelta(0))
    await outbox.sweep(grace=timedelta(0))
    runtime.every(runtime.settings.relay_interval_s, outbox.sweep)
    grace = timedelta(seconds=config.reconcile_grace_s)
    runtime.every(runtime.settings.relay_interval_s, lambda: registrations.reconcile(grace))
    runtime.every(config.purge_interval_s, registrations.purge_past_events)
    runtime.settle_before_stop(registrations.published)
    await app[pages.SIGN_IN].start(runtime)


def widget(app: web.Application) -> None:
    """The widget script, beside the API (open to the sites in CORS_ORIGINS like the API)."""
    embed.install(app, STATIC / "embed.js")


def create_app(settings: Settings | None = None, config: RegistrationConfig | None = None) -> web.Application:
    config = config or RegistrationConfig()
    app = create_service_app(SERVICE, settings or get_settings(), api=api, routes=widget,
                             setup=lambda app, runtime: setup(app, runtime, config))
    app[CONFIG] = config
    app.router.add_routes(pages.routes)
    runtime = app[RUNTIME]
    sign_in = app[pages.SIGN_IN] = SignIn(
        runtime, public_url=runtime.settings.public_base_url, message=StaffSignInRequested, home=pages.DOOR,
        listed=dict.fromkeys(runtime.settings.admins, Role.admin), limit=rate_limit, pages=pages.pages)
    sign_in.install(app)
    pages.install_door(app)
    app[RATE_LIMITS] = RateLimits(runtime.db["rate_limits"])
    # Inside the shared request context, which writes their errors as JSON; refusals outermost, so that the
    # idempotency check's own refusals are translated too.
    app.middlewares.extend([refusals, idempotency])
    return app


def main() -> None:
    settings = settings_or_exit(SERVICE)
    run(create_app(settings), settings, SERVICE, settings.registration_port)
