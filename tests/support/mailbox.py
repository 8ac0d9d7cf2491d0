"""Reads mail through the Mailpit HTTP API (the dev sink serves the same subset), so tests run unchanged against
a real Mailpit."""

import asyncio
import time

import aiohttp


class Mailbox:
    def __init__(self, api_url: str):
        self.api_url = api_url.rstrip("/")

    async def _get(self, path: str, **params) -> dict | str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.api_url}{path}", params=params) as resp:
            resp.raise_for_status()
            return await resp.json() if resp.content_type == "application/json" else await resp.text()

    async def messages_to(self, address: str) -> list[dict]:
        listing = await self._get("/api/v1/messages", limit=5000)
        return [m for m in listing["messages"]
                if any(to["Address"].lower() == address.lower() for to in m["To"])]

    async def recipients(self) -> set[str]:
        """Every address (lower case) that has received mail."""
        listing = await self._get("/api/v1/messages", limit=5000)
        return {to["Address"].lower() for m in listing["messages"] for to in m["To"]}

    async def message(self, message_id: str) -> dict:
        return await self._get(f"/api/v1/message/{message_id}")

    async def headers(self, message_id: str) -> dict:
        return await self._get(f"/api/v1/message/{message_id}/headers")

    async def raw(self, message_id: str) -> str:
        return await self._get(f"/api/v1/message/{message_id}/raw")

    async def part(self, message_id: str, part_id: str) -> tuple[str, bytes]:
        """(content type, bytes) of one MIME part, e.g. an attachment's PartID."""
        async with aiohttp.ClientSession() as session, \
                session.get(f"{self.api_url}/api/v1/message/{message_id}/part/{part_id}") as resp:
            resp.raise_for_status()
            return resp.content_type, await resp.read()

    async def delete_all(self) -> None:
        async with aiohttp.ClientSession() as session, session.delete(f"{self.api_url}/api/v1/messages") as resp:
            resp.raise_for_status()

    async def wait_for(self, address: str, count: int = 1, timeout_s: float = 15, subject_contains: str = "") -> list[dict]:
        """Wait until `count` mails matching the filter have arrived for address; return them in full, oldest first."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [m for m in await self.messages_to(address) if subject_contains in m["Subject"]]
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise AssertionError(f"expected {count} mail(s) to {address} matching {subject_contains!r}, "
                                         f"got {len(found)}: {[m['Subject'] for m in found]}")
                return [await self.message(m["ID"]) for m in reversed(found)]
            await asyncio.sleep(0.1)
