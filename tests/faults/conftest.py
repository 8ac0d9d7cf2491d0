"""The fault suite's fixtures: a private RabbitMQ node for the module (so the shared broker is never stopped), and
per test a whole system of OS processes on its own store, mail sink, exchange and queues, stopped after the test
whatever happened. The figures of every row are printed at the end of the run."""

import pytest

from tests.support.rabbit_node import RabbitNode

from .row import Figures
from .stack import System

FIGURES: list[Figures] = []


@pytest.fixture(scope="module")
async def node(tmp_path_factory):
    async with RabbitNode(tmp_path_factory.mktemp("rabbit")) as node:
        yield node


@pytest.fixture
async def system(node, tmp_path_factory):
    system = System(tmp_path_factory.mktemp("fault"), node.amqp_url)
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture
def figures() -> list[Figures]:
    return FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "fault suite figures")
        terminalreporter.write_line(Figures.HEADER)
        for row in FIGURES:
            terminalreporter.write_line(row.row())
