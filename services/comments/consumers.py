"""Message consumers of the comments service."""

import logging

from shared.bus import Handler
from shared.messages import CloudEvent
from shared.messages.registration import RegistrationErased

from .service import Comments

log = logging.getLogger(__name__)
BINDINGS = ["registration.erased.#"]


def erasure_handler(comments: Comments) -> Handler:
    async def on_erased(event: CloudEvent) -> None:
        """The person was erased from registration: anonymise their comments too (idempotent)."""
        if not isinstance(event.data, RegistrationErased):
            return
        changed = await comments.erase(str(event.data.email))
        log.info("anonymised %d comment(s) after an erasure", changed, extra={"message_id": event.id})

    return on_erased
