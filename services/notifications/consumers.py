"""The bus entrypoint of the notifications service: what it listens to, and its handler (Notifier.handle, the use
case in service.py)."""

from shared.bus import Handler

from .service import Notifier

BINDINGS = ["registration.#", "event.#", "comment.#"]
# Messages taken from the queue at once: more than the claims in flight, so that a burst's attendee writes and
# outcomes go to the store in batches of tens rather than a few (a third of the store requests per mail).
PREFETCH = 256


def handler(notifier: Notifier) -> Handler:
    return notifier.handle
