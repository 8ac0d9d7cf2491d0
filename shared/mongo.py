"""MongoDB access through PyMongo's async API (Motor is deprecated in its favour)."""

from collections.abc import Awaitable

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError

from .settings import Settings


def connect(settings: Settings) -> AsyncMongoClient:
    # tz_aware: datetimes come back as aware UTC, so they compare with the aware ones the domain uses. A store
    # that is away fails a request within seconds (server selection, connecting), not after PyMongo's 20-30 s.
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def unavailable(exc: BaseException) -> bool:
    """Whether an error (or one it was raised from) says the store could not be reached or did not answer in time
    (AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, …): worth trying again later, not a bug."""
    while exc is not None:
        if isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout):
            return True
        exc = exc.__cause__
    return False


def database(client: AsyncMongoClient, settings: Settings, service: str) -> AsyncDatabase:
    return client[settings.db_name(service)]


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


DUPLICATE_KEY = 11000


async def duplicates_in(unordered_write: Awaitable) -> set[int]:
    """Run an unordered bulk write (insert_many / bulk_write with ordered=False) and return the indexes of the
    items a unique index refused; every other item was written. Any other error is raised."""
    try:
        await unordered_write
    except BulkWriteError as exc:
        errors = exc.details["writeErrors"]
        if any(error["code"] != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


async def drop_retired_indexes(collection: AsyncCollection, keys: list[list[tuple[str, int]]]) -> None:
    """Indexes a newer version no longer uses cost every write until dropped: drop those that remain. Found by
    their keys (nx-27017 lists indexes under names of its own, though it drops them by MongoDB's)."""
    present = [list(index["key"].items()) async for index in await collection.list_indexes()]
    for key in keys:
        if key in present:
            await collection.drop_index(key)
