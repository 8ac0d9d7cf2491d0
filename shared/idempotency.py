"""Idempotent consumption: a consumer records each message id it has processed in its own database."""

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .bus import Handler
from .messages import CloudEvent

KEEP = timedelta(days=30)


class ProcessedMessages:
    def __init__(self, db: AsyncDatabase, consumer: str):
        self.collection = db["processed_messages"]
        self.consumer = consumer

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("consumer", 1), ("message_id", 1)], unique=True)
        await self.collection.create_index("processed_at", expireAfterSeconds=int(KEEP.total_seconds()))

    async def seen(self, message_id: str) -> bool:
        return await self.collection.find_one({"consumer": self.consumer, "message_id": message_id}) is not None

    async def mark(self, message_id: str) -> None:
        try:
            await self.collection.insert_one(
                {"consumer": self.consumer, "message_id": message_id, "processed_at": datetime.now(UTC)})
        except DuplicateKeyError:
            pass  # a competing replica finished the same message; its effect is idempotent too

    def once(self, handler: Handler) -> Handler:
        """Wrap a handler so a redelivered message has no second effect. The handler itself must tolerate a
        crash between its effect and the mark (at-least-once), e.g. by keying its writes on the message id."""

        async def handle(event: CloudEvent) -> None:
            if await self.seen(event.id):
                return
            await handler(event)
            await self.mark(event.id)

        return handle
