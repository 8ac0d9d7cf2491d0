"""Notifications service: mails for registration, møteplass and comment events, sent once each, with an audit
trail, dead-letter handling and one-click unsubscribe."""

from aiohttp import web

from shared.outbox import Outbox
from shared.runtime import RUNTIME, Runtime, create_service_app, run, settings_or_exit
from shared.settings import Settings, get_settings

from .consumers import BINDINGS, PREFETCH, handler
from .mailer import Mailer
from .pages import routes as pages
from .routes import NOTIFIER, SERVICE, api
from .service import Notifier
from .store import Store


def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or get_settings()

    async def setup(_: web.Application, runtime: Runtime) -> None:
        await notifier.store.ensure_indexes()
        await relay.ensure_indexes()
        await runtime.bus.consume(SERVICE, BINDINGS, handler(notifier), prefetch=PREFETCH)
        runtime.every(settings.relay_interval_s, relay.sweep)
        # The reminder sweep shares the relay's pace: both look for work that has come due in the store.
        runtime.every(settings.relay_interval_s, notifier.send_due_reminders)

    async def close_mailer(_: web.Application):
        yield
        await notifier.mailer.close()

    app = create_service_app(SERVICE, settings, api=api, setup=setup)
    runtime = app[RUNTIME]
    store = Store(runtime.db)
    relay = Outbox(runtime.bus, [store.notifications])
    notifier = Notifier(settings, store, Mailer(settings, tracer=runtime.tracer), relay)
    app[NOTIFIER] = notifier
    app.cleanup_ctx.append(close_mailer)
    app.router.add_routes(pages)
    return app


def main() -> None:
    settings = settings_or_exit(SERVICE)
    run(create_app(settings), settings, SERVICE, settings.notifications_port)
