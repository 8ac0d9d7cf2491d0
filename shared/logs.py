"""Structured JSON logs carrying the id of the request (or message) being handled."""

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@contextmanager
def correlated(correlation_id: str | None = None) -> Iterator[str]:
    """While handling one message or one run of a periodic job, log lines and the events made carry this id (a
    fresh one if none is given): every event can be traced to what caused it."""
    token = request_id.set(correlation_id or uuid.uuid4().hex)
    try:
        yield request_id.get()
    finally:
        request_id.reset(token)


class _RequestIdFilter(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id.get()
        return True


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s",
                                       rename_fields={"asctime": "time", "levelname": "level"}))
    handler.addFilter(_RequestIdFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aio-pika/aiormq are chatty at INFO about every reconnect attempt detail.
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
