"""Message consumers of the comments service."""

import logging

from shared.bus import Handler
from shared.messages import CloudEvent
from shared.messages.registration import RegistrationErased

from . import domain
from .api import Comments

log = logging.getLogger(__name__)


def erasure_handler(comments: Comments) -> Handler:
    async def on_erased(event: CloudEvent) -> None:
        """Anonymise the person's comments (name → Anonym, email and IP dropped); texts and threads stay.
        Repeating it changes nothing, so a redelivery after a crash is harmless."""
        if not isinstance(event.data, RegistrationErased):
            return
        changed = await comments.store.erase(str(event.data.email).lower(), domain.anonymised(),
                                             domain.ERASED_FIELDS)
        comments.cache.drop()
        log.info("anonymised %d comment(s) after an erasure", changed, extra={"message_id": event.id})

    return on_erased
