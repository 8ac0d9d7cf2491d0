"""What a service holds for its lifetime (its own database, the bus, background tasks) and how it is run."""

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine

from aiohttp import web

from . import logs, tracing
from .auth import Verifier
from .bus import Bus
from .http import Api, allow_browsers, service_app
from .mongo import connect, database, ping
from .settings import Settings, SettingsError, get_settings

log = logging.getLogger(__name__)
SETTLE_S = 10.0  # a broker that does not confirm by then leaves the rest to the relay
SHUTDOWN_S = 15.0  # requests in flight at SIGTERM get this long to finish (deploy/k8s sizes its grace period on it)


class Runtime:
    def __init__(self, settings: Settings, service: str):
        self.settings = settings
        self.service = service
        self.client = connect(settings)
        self.db = database(self.client, settings, service)
        self.tracer_provider = tracing.tracer_provider(service)  # None unless OTEL_* ask for traces
        self.tracer = tracing.tracer_of(self.tracer_provider)
        self.bus = Bus(settings, source=f"/moteplass/{service}", tracer=self.tracer)
        self.tasks: list[asyncio.Task] = []
        self._settling: list[Callable[[], Awaitable]] = []

    @property
    def ready_checks(self) -> dict[str, Callable[[], Awaitable]]:
        return {"store": lambda: ping(self.client), "broker": self._broker_ready, "consumers": self._consumers_ready}

    async def _broker_ready(self) -> None:
        if not self.bus.is_connected:
            raise ConnectionError("not connected to the broker")

    async def _consumers_ready(self) -> None:
        if missing := await self.bus.missing_consumers():
            raise ConnectionError(f"no consumer on {', '.join(missing)}")

    async def start(self, attempts: int = 30) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await self.bus.connect()
                self.spawn(self.bus.watch())
                return
            except (ConnectionError, OSError) as exc:
                if attempt == attempts:
                    raise
                log.warning("broker not reachable yet (%s); retrying", exc)
                await asyncio.sleep(1)

    def spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task

    def every(self, interval_s: float, job: Callable[[], Awaitable]) -> asyncio.Task:
        """Run an upkeep job now and then every interval_s for the service's lifetime; a failure is logged and the
        job tried again next time."""
        return self.spawn(_repeat(interval_s, job))

    def settle_before_stop(self, job: Callable[[], Awaitable]) -> None:
        """Have `stop` await job (say, publishing what the last requests stored) before it lets go of the broker
        and the store; it runs once the last requests are answered."""
        self._settling.append(job)

    async def stop_taking(self) -> None:
        """At SIGTERM, while the last requests are answered: take no more messages off the bus."""
        await self.bus.stop_consuming()

    async def stop(self) -> None:
        await self.stop_taking()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self._settle(), SETTLE_S)
        except TimeoutError:
            log.warning("stopped before all work was settled; unacked messages go back to the queue and the "
                        "outbox relay publishes the rest")
        await self.bus.close()
        await self.client.close()
        if self.tracer_provider is not None:
            await asyncio.to_thread(self.tracer_provider.shutdown)  # exports what is left (a blocking call)


    async def _settle(self) -> None:
        # The handlers in flight finish (and ack) first: what they store is then published with the rest.
        await self.bus.drained()
        await asyncio.gather(*(job() for job in self._settling))


async def _repeat(interval_s: float, job: Callable[[], Awaitable]) -> None:
    while True:
        try:
            with logs.correlated():  # one id for each run: the events it causes can be traced to it
                await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; will try again", getattr(job, "__qualname__", "upkeep"), exc_info=True)
        await asyncio.sleep(interval_s)


def settings_or_exit(service: str) -> Settings:
    """The settings a service starts with; if they may not be used (no JWT_SECRET, say), it stops at once with a
    message that says what to set, not a traceback."""
    settings = get_settings()
    try:
        settings.secret()
    except SettingsError as exc:
        sys.exit(f"{service} does not start: {exc}")
    return settings


def run(app: web.Application, settings: Settings, service: str, port: int) -> None:
    logs.configure(service, settings.log_level)
    log.info("starting %s on http://%s:%d", service, settings.host, port)
    web.run_app(app, host=settings.host, port=port, access_log=None, print=None, shutdown_timeout=SHUTDOWN_S)


RUNTIME = web.AppKey("runtime", Runtime)
Setup = Callable[[web.Application, Runtime], Awaitable[None]]


def create_service_app(service: str, settings: Settings, *, api: Api | None = None, setup: Setup | None = None,
                       routes: Callable[[web.Application], None] | None = None) -> web.Application:
    """An aiohttp app with the service's runtime started before it serves and stopped after it. `routes` adds
    what is not part of the API (embed.js) before the sites in CORS_ORIGINS are let in."""
    verifier = Verifier(settings)  # first: refuses (SettingsError) a secret that may not be used
    runtime = Runtime(settings, service)
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    app = service_app(service, verifier, runtime.ready_checks, metrics_token=metrics_token,
                      metrics_open=settings.dev_mode, tracer=runtime.tracer)
    app[RUNTIME] = runtime
    if api is not None:
        api.install(app)
    if routes is not None:
        routes(app)
    allow_browsers(app, settings.cors_origins)

    async def lifecycle(app: web.Application):
        await runtime.start()
        if setup is not None:
            await setup(app, runtime)
        yield
        await runtime.stop()

    app.cleanup_ctx.append(lifecycle)
    # aiohttp calls on_shutdown once it stops listening, before it waits for the requests in flight.
    app.on_shutdown.append(lambda app: runtime.stop_taking())
    return app
