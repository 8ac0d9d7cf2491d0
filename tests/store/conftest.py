"""The store conformance suite runs against the tests' store: nx-27017, or any MongoDB at MONGO_URL."""

import uuid
from typing import Any, NamedTuple

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from tests.store.divergences import BY_KEY


class Store(NamedTuple):
    db: AsyncDatabase
    nx: bool  # nx-27017, whose known divergences (tests/store/divergences.py) are asserted instead

    @property
    def x(self) -> AsyncCollection:
        return self.db["x"]


@pytest.fixture(scope="session")
async def store_client(mongo_url):
    # As the services connect (shared.mongo.connect): datetimes come back aware.
    client = AsyncMongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000)
    yield client
    await client.close()


@pytest.fixture
async def store(store_client) -> Store:
    """A database of this test's own, dropped after."""
    info = await store_client.admin.command("buildInfo")
    name = f"conformance_{uuid.uuid4().hex[:10]}"
    yield Store(store_client[name], info.get("process") == "nx_27017")
    await store_client.drop_database(name)


def expect(store: Store, got: Any, want: Any, *, diverges: str | None = None, nx: Any = None) -> None:
    """`want` is what MongoDB documents. On nx-27017, a form in the divergence list must still give `nx` — when
    the stand-in is fixed this fails, so the entry (and the README's line) goes."""
    if diverges is not None and store.nx:
        assert diverges in BY_KEY, f"{diverges} is not in tests/store/divergences.py"
        assert got == nx, f"nx-27017 no longer diverges in {diverges!r}: drop it from tests/store/divergences.py"
    else:
        assert got == want
