"""A stateful property test (Hypothesis) over the registration and comments services together: random sequences
of writes — create, patch, publish and cancel møteplassar; register, confirm, change answers, cancel, check in and
erase registrations; post, edit, moderate and import comments, close and hide threads — each answered below 500,
followed by every read route, which must answer 2xx whatever was accepted before."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, rule, run_state_machine_as_test

from services.comments.app import create_app as comments_app
from services.comments.config import CommentsConfig
from tests.integration.registration.conftest import registration_app
from tests.support.bus_tap import BusTap

EXAMPLES, STEPS = 20, 20  # about 10 s of CPU in all

ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")), min_size=2, max_size=30)
SOON = datetime.now(UTC) + timedelta(days=30)
MOMENTS = st.integers(-24 * 60, 24 * 60).map(lambda minutes: (SOON + timedelta(minutes=minutes)).isoformat())


class Http:
    """Blocking calls from Hypothesis's thread, made on the test's event loop (where the services run)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession):
        self.loop, self.session = loop, session

    def run(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def __call__(self, method: str, url: str, **kwargs) -> tuple[int, Any]:
        async def call() -> tuple[int, Any]:
            async with self.session.request(method, url, **kwargs) as resp:
                body = await resp.read()
                return resp.status, json.loads(body) if resp.content_type == "application/json" else body
        return self.run(call())


class Writes(RuleBasedStateMachine):
    """Any sequence of writes; every read answers 2xx afterwards. Set up by the test (class attributes)."""

    http: Http
    tap: BusTap
    registration: str
    comments: str
    admin: dict

    events = Bundle("events")
    registrations = Bundle("registrations")
    posted = Bundle("posted")
    threads = Bundle("threads")

    def __init__(self):
        super().__init__()
        self.tag = uuid.uuid4().hex[:6]
        self.slugs: set[str] = set()
        self.rids: set[str] = set()
        self.thread_ids: set[str] = set()

    def write(self, method: str, url: str, **kwargs) -> tuple[int, Any]:
        status, body = self.http(method, url, **kwargs)
        assert status < 500, (method, url, kwargs, status, body)
        return status, body

    def link_token(self, rid: str) -> str | None:
        """The newest manage token the bus carried for a registration (as the participant's mail would)."""
        urls = [m["data"].get("manage_url") or m["data"].get("confirm_url") for m in self.tap.messages
                if m["data"].get("registration_id") == rid]
        tokens = [parse_qs(urlsplit(url).query)["token"][0] for url in urls if url]
        return tokens[-1] if tokens else None

    # ---- møteplassar ----

    @rule(target=events, n=st.integers(0, 2), capacity=st.integers(1, 3), published=st.booleans(),
          confirm_email=st.booleans(), question=st.booleans(), starts=MOMENTS)
    def create_event(self, n, capacity, published, confirm_email, question, starts):
        slug = f"jam-{self.tag}-{n}"
        body = {"slug": slug, "title": "Innovasjonsjam", "starts_at": starts,
                "ends_at": (datetime.fromisoformat(starts) + timedelta(hours=3)).isoformat(), "venue": "Rådhuset",
                "capacity": capacity, "published": published, "require_email_confirmation": confirm_email,
                "questions": [{"id": "diett", "text": "Diett", "kind": "single_choice", "options": ["vegan", "alt"],
                               "required": True}] if question else []}
        status, _ = self.write("POST", f"{self.registration}/events", json=body, headers=self.admin)
        assert status in (201, 409)
        self.slugs.add(slug)
        return slug

    @rule(slug=events, change=st.fixed_dictionaries({}, optional={
        "title": st.one_of(st.none(), ANY_TEXT), "capacity": st.one_of(st.none(), st.integers(-1, 4)),
        "starts_at": st.one_of(st.none(), MOMENTS, st.integers(0, 10)), "ends_at": st.one_of(st.none(), MOMENTS),
        "venue": st.one_of(st.none(), ANY_TEXT), "registration_closes_at": st.one_of(st.none(), MOMENTS),
        "description": st.one_of(st.none(), ANY_TEXT)}))
    def patch_event(self, slug, change):
        self.write("PATCH", f"{self.registration}/events/{slug}", json=change, headers=self.admin)

    @rule(slug=events, action=st.sampled_from(["publish", "cancel"]))
    def publish_or_cancel(self, slug, action):
        self.write("POST", f"{self.registration}/events/{slug}/{action}", headers=self.admin)

    # ---- registrations ----

    @rule(target=registrations, slug=events, n=st.integers(0, 3), answer=st.sampled_from([None, "vegan", "x"]),
          kommune=st.booleans())
    def register(self, slug, n, answer, kommune):
        body = {"name": f"Deltakar {n}", "email": f"d{n}@baerum.kommune.no", "organisation": "Bærum kommune",
                "consent": True, **({"answers": {"diett": answer}} if answer else {}),
                **({"organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"}}
                   if kommune else {})}
        status, created = self.write("POST", f"{self.registration}/events/{slug}/registrations", json=body)
        if status != 201:
            return None
        rid = created["id"]
        self.rids.add(rid)
        self.http.run(self.told(rid))
        return rid

    async def told(self, rid: str) -> None:
        """Once the bus carried the registration's first message (with its link)."""
        for _ in range(500):
            if self.link_token(rid):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no message with a link for {rid}")

    def _by_link(self, method: str, rid: str | None, path: str = "", **kwargs) -> None:
        if rid is None or (token := self.link_token(rid)) is None:
            return
        self.write(method, f"{self.registration}/registrations/{rid}{path}", params={"token": token}, **kwargs)

    @rule(rid=registrations)
    def confirm(self, rid):
        self._by_link("POST", rid, "/confirm")

    @rule(rid=registrations, answer=st.sampled_from(["vegan", "alt", "ukjend", ""]))
    def change_answers(self, rid, answer):
        self._by_link("PATCH", rid, json={"answers": {"diett": answer}})

    @rule(rid=registrations)
    def cancel(self, rid):
        self._by_link("DELETE", rid)

    @rule(rid=registrations, by_link=st.booleans())
    def erase(self, rid, by_link):
        if by_link:
            self._by_link("DELETE", rid, "/data")
        elif rid is not None:
            self.write("POST", f"{self.registration}/registrations/{rid}/erase", headers=self.admin)

    @rule(rid=registrations)
    def check_in(self, rid):
        if rid is not None:
            self.write("POST", f"{self.registration}/registrations/{rid}/check-in", headers=self.admin)

    # ---- comments ----

    @rule(target=threads, n=st.integers(0, 1))
    def thread(self, n):
        thread = f"side-{self.tag}-{n}"
        self.thread_ids.add(thread)
        return thread

    @rule(target=posted, thread=threads, text=WORDS, author=st.integers(0, 2), reply_to=st.none() | posted)
    def post_comment(self, thread, text, author, reply_to):
        body = {"author_name": f"Forfattar {author}", "email": f"f{author}@example.no", "body": text,
                **({"parent_id": reply_to[0]} if reply_to else {})}
        status, created = self.write("POST", f"{self.comments}/threads/{thread}/comments", json=body)
        return (created["id"], created["edit_token"]) if status == 201 else None

    @rule(comment=posted, text=WORDS)
    def edit_comment(self, comment, text):
        if comment:
            self.write("PATCH", f"{self.comments}/comments/{comment[0]}", json={"body": text},
                       headers={"X-Edit-Token": comment[1]})

    @rule(comment=consumes(posted))
    def delete_own_comment(self, comment):
        if comment:
            self.write("DELETE", f"{self.comments}/comments/{comment[0]}", headers={"X-Edit-Token": comment[1]})

    @rule(comments=st.lists(posted, min_size=1, max_size=3),
          action=st.sampled_from(["approve", "reject", "spam", "delete"]))
    def moderate(self, comments, action):
        ids = [c[0] for c in comments if c] or ["0" * 24]
        self.write("POST", f"{self.comments}/moderation/comments", json={"ids": ids, "action": action},
                   headers=self.admin)

    @rule(thread=threads, change=st.fixed_dictionaries({}, optional={
        "closed": st.booleans(), "hidden": st.booleans(), "moderation": st.sampled_from(["pre", "post"])}))
    def change_thread(self, thread, change):
        self.write("PATCH", f"{self.comments}/threads/{thread}", json=change, headers=self.admin)

    @rule(source=threads, target_thread=threads)
    def export_and_import(self, source, target_thread):
        status, export = self.write("GET", f"{self.comments}/threads/{source}/export", headers=self.admin)
        assert status == 200
        self.write("POST", f"{self.comments}/threads/{target_thread}/import", json=export, headers=self.admin)

    # ---- then every read ----

    def teardown(self):
        reads = [("GET", f"{self.registration}/events", {})]
        for slug in self.slugs:
            base = f"{self.registration}/events/{slug}"
            reads += [("GET", f"{base}{path}", {"headers": self.admin}) for path in ("", "/registrations.csv", "/counts")]
            reads += [("GET", f"{base}/registrations", {"headers": self.admin, "params": params})
                      for params in ({}, {"status": "erased"}, {"status": "cancelled"}, {"limit": 1})]
        status, events = self.http("GET", f"{self.registration}/events")
        reads += [("GET", f"{self.registration}/events/{e['slug']}", {}) for e in events if e["slug"] in self.slugs]
        for rid in self.rids:
            # An erased registration has no token left: its link is a 404, not something to read.
            status, _ = self.http("GET", f"{self.registration}/registrations/{rid}",
                                  params={"token": self.link_token(rid)})
            assert status in (200, 404), (rid, status)
        for thread in self.thread_ids:
            base = f"{self.comments}/threads/{thread}"
            reads += [("GET", f"{base}/comments", {"params": {"sort": sort}})
                      for sort in ("newest", "oldest", "most_replied")]
            reads += [("GET", f"{base}/export", {"headers": self.admin})]
        if self.thread_ids:
            reads += [("POST", f"{self.comments}/threads/counts", {"json": {"threads": sorted(self.thread_ids)}})]
        reads += [("GET", f"{self.comments}/moderation/comments", {"headers": self.admin, "params": {"status": s}})
                  for s in ("pending", "approved", "rejected", "spam", "deleted")]
        for method, url, kwargs in reads:
            status, body = self.http(method, url, **kwargs)
            assert 200 <= status < 300, (method, url, kwargs, status, body)


async def test_every_read_answers_2xx_after_any_sequence_of_accepted_writes(start_service, settings, admin_headers):
    async with BusTap(settings, "registration.#", "event.#") as tap:
        registration = await start_service(registration_app(), "registration")
        comments = await start_service(lambda s: comments_app(s, CommentsConfig(
            posts_per_minute=100_000, new_threads_per_hour=100_000)), "comments")
        async with aiohttp.ClientSession() as session:
            Writes.http, Writes.tap = Http(asyncio.get_running_loop(), session), tap
            Writes.registration, Writes.comments, Writes.admin = registration, comments, admin_headers
            await asyncio.to_thread(run_state_machine_as_test, Writes, settings=hypothesis_settings(
                max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True,
                # No shrinking: a failing sequence is printed as found (shrinking one costs minutes here).
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
