"""Issue #9's fault table, one test per row: a burst of registrations at ≥ 100/s, the fault injected mid-burst
and ended, recovery with no manual step, and a reconciliation from outside (see row.py). The figures print at
the end of the run (`-m "not faults"` leaves the suite out)."""

import asyncio

import aiohttp
import pytest

from .row import FaultClock, Figures, run, sending_now
from .stack import System

pytestmark = pytest.mark.faults


async def check(system: System, figures: list[Figures], name: str, fault, **options) -> None:
    row, problems = await run(system, name, fault, **options)
    figures.append(row)
    assert not problems, "\n".join([Figures.HEADER, row.row(), *problems, system.logs()])


async def test_rabbitmq_node_stopped_for_10_s(system, node, figures):
    await system.start()

    async def fault(system: System, clock: FaultClock) -> None:
        await node.stop_app()
        try:
            await asyncio.sleep(10)
        finally:
            clock.end()
            await node.start_app()

    await check(system, figures, "RabbitMQ node stopped 10 s, then started", fault)


@pytest.mark.parametrize("service", ["notifications", "registration"])
async def test_a_service_killed_and_restarted(system, figures, service):
    await system.start()

    async def fault(system: System, clock: FaultClock) -> None:
        [process] = system.services[service]
        process.kill()
        if service == "notifications":  # only a sender killed mid-send can leave copies
            clock.in_flight = await sending_now(system)
        await asyncio.sleep(1)
        clock.end()
        await system.start_service(service)

    await check(system, figures, f"{service} killed -9, restarted after 1 s", fault)


async def test_store_killed_for_5_s(system, figures):
    await system.start()

    async def fault(system: System, clock: FaultClock) -> None:
        system.store.kill()
        await asyncio.sleep(5)
        clock.end()
        await system.start_store()

    await check(system, figures, "store (nx-27017) killed -9, restarted after 5 s", fault, store_outage=True)


async def test_smtp_server_down_for_15_s(system, figures):
    await system.start()

    async def fault(system: System, clock: FaultClock) -> None:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{system.sink_api}/smtp/down") as response:
                response.raise_for_status()
                # A mail the server was taking when it went down may be kept without its sender hearing so: the
                # sender tries again later, and that copy (same Message-ID) is the protocol's own window.
                clock.in_flight = (await response.json())["cut"]
            try:
                await asyncio.sleep(15)
            finally:
                clock.end()
                async with http.post(f"{system.sink_api}/smtp/up") as response:
                    response.raise_for_status()

    await check(system, figures, "SMTP server down 15 s", fault)


async def test_two_notification_replicas_one_killed(system, figures):
    await system.start(notification_replicas=2)

    async def fault(system: System, clock: FaultClock) -> None:
        system.services["notifications"][1].kill()
        clock.in_flight = await sending_now(system)  # both replicas' sends: an upper bound for the dead one's
        clock.end()

    await check(system, figures, "two notification replicas, one killed -9 (not restarted)", fault)
