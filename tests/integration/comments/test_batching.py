"""The hot path's group commits keep every rule: a burst of concurrent comments is counted, refused, stored and
published exactly as one comment at a time would be."""

import asyncio

from services.comments.config import CommentsConfig
from tests.conftest import within_one_window
from tests.integration.comments.conftest import comment
from tests.integration.comments.test_comments import post
from tests.integration.comments.test_erasure import stored


async def test_a_burst_keeps_the_limit_the_duplicate_rule_and_every_event(start_comments, http, settings, tap):
    base = await start_comments(CommentsConfig(posts_per_minute=3, new_threads_per_hour=1000))
    await within_one_window()  # a burst across a minute boundary would be counted in two windows
    burst = [(comment(body=f"Innlegg {ip} {n}"), f"10.1.0.{ip}") for ip in (1, 2) for n in range(6)]
    burst += [(comment(body="Same tekst frå tre"), f"10.2.0.{ip}") for ip in range(3)]
    results = await asyncio.gather(*(post(http, base, body, ip=ip) for body, ip in burst))
    statuses = [status for status, _, _ in results]

    assert sorted(statuses[:6]) == sorted(statuses[6:12]) == [201] * 3 + [429] * 3  # 3 a minute per address
    assert all(1 <= int(headers["Retry-After"]) <= 60 for status, _, headers in results if status == 429)
    assert sorted(statuses[12:]) == [201, 409, 409]  # the same text once in the thread, whatever the batch
    created = [body["id"] for status, body, _ in results if status == 201]
    assert len({*created}) == 7

    sent = await tap.wait_for("comment.submitted.v1", count=7)
    assert sorted(e["data"]["comment_id"] for e in sent) == sorted(created)
    docs = await stored(settings)
    assert sorted(str(d["_id"]) for d in docs) == sorted(created)  # nothing of a refused request was written
    for _ in range(100):  # the publishing requests clear their outbox entries (the relay leaves young ones)
        if all(d["outbox"] == [] for d in docs):
            break
        await asyncio.sleep(0.05)
        docs = await stored(settings)
    assert all(d["outbox"] == [] for d in docs)
