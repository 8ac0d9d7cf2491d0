"""Each message the comments service stores is published once, also when the comment changes again before the
first publish has been cleared from its outbox (a moderation or deletion right after posting)."""

import asyncio
import time
from collections import Counter

from tests.integration.comments.conftest import comment
from tests.integration.comments.test_comments import post

COMMENTS = 100
ACTIONS = ("approve", "reject", "spam", "delete", "author-delete")


async def test_comments_changed_right_after_posting_publish_every_message_exactly_once(
        base, http, tap, moderator_headers):
    delays: list[float] = []

    async def post_and_change(n: int) -> None:
        status, created, _ = await post(http, base, comment(body=f"Kommentar nr. {n}"), ip=f"10.1.0.{n}")
        assert status == 201, created
        posted = time.monotonic()
        action = ACTIONS[n % len(ACTIONS)]
        if action == "author-delete":
            request = http.delete(f"{base}/comments/{created['id']}", headers={"X-Edit-Token": created["edit_token"]})
        else:
            request = http.post(f"{base}/moderation/comments", headers=moderator_headers,
                                json={"ids": [created["id"]], "action": action})
        async with request as resp:
            delays.append(time.monotonic() - posted)
            assert resp.status in (200, 204), await resp.text()

    for first in range(0, COMMENTS, 5):  # five at a time, each changed as soon as it is posted
        await asyncio.gather(*(post_and_change(n) for n in range(first, first + 5)))
    delays.sort()
    print(f"\nchanged (answered) {delays[len(delays) // 2] * 1000:.0f} ms after posting (median), "
          f"{delays[int(len(delays) * 0.9)] * 1000:.0f} ms (p90)")

    await tap.wait_for(count=2 * COMMENTS, timeout_s=30)  # one submitted and one outcome per comment
    await asyncio.sleep(1.5)  # and whatever would come twice
    ids = Counter(event["id"] for event in tap.messages)
    assert [id_ for id_, times in ids.items() if times > 1] == []
    kinds = Counter(event["type"].split(".")[-2] for event in tap.messages)
    assert kinds["submitted"] == COMMENTS and sum(kinds.values()) == 2 * COMMENTS, kinds
