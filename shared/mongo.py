"""MongoDB access through PyMongo's async API (Motor is deprecated in its favour)."""

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from .settings import Settings


def connect(settings: Settings) -> AsyncMongoClient:
    # tz_aware: datetimes come back as aware UTC, so they compare with the aware ones the domain uses.
    return AsyncMongoClient(settings.mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)


def database(client: AsyncMongoClient, settings: Settings, service: str) -> AsyncDatabase:
    return client[settings.db_name(service)]


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")
