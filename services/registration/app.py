"""Registration service: møteplassar and registrations with atomic seats, a waiting list and an outbox."""

from datetime import timedelta

from aiohttp import web

from shared.outbox import Outbox
from shared.ratelimit import RateLimits
from shared.runtime import RUNTIME, Runtime, create_service_app, run, settings_or_exit
from shared.settings import Settings, get_settings

from .config import RegistrationConfig
from .service import Registrations
from .pages import routes as pages
from .routes import CONFIG, RATE_LIMITS, REGISTRATIONS, api, refusals
from .idempotency import KEEP as IDEMPOTENCY_KEEP
from .idempotency import STORE as IDEMPOTENCY_STORE
from .idempotency import idempotency
from .store import Store

SERVICE = "registration"


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


def create_app(settings: Settings | None = None, config: RegistrationConfig | None = None) -> web.Application:
    config = config or RegistrationConfig()
    app = create_service_app(SERVICE, settings or get_settings(), api=api,
                             setup=lambda app, runtime: setup(app, runtime, config))
    app[CONFIG] = config
    app.router.add_routes(pages)
    app[RATE_LIMITS] = RateLimits(app[RUNTIME].db["rate_limits"])
    # Inside the shared request context, which writes their errors as JSON; refusals outermost, so that the
    # idempotency check's own refusals are translated too.
    app.middlewares.extend([refusals, idempotency])
    return app


def main() -> None:
    settings = settings_or_exit(SERVICE)
    run(create_app(settings), settings, SERVICE, settings.registration_port)
