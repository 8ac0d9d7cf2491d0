"""Sign-in for the staff pages of the services that have them (registration: admins at the door; comments:
moderators and admins), with no passwords kept. A listed address asks for a link; the link — signed, short-lived
and single use — is mailed through the bus like every mail; following it and pressing the button (a GET changes
nothing: mail scanners follow links) starts a session: a signed cookie, HttpOnly and SameSite=Strict, naming the
person, their role and the CSRF token every form of the staff pages carries. Bearer tokens stay the API's way in."""

import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import jwt
from aiohttp import web
from pymongo import ReturnDocument

from . import logs, outbox
from .auth import Role
from .http import ApiError
from .messages import make_event
from .messages.staff import SignInLink
from .outbox import Outbox
from .pages import Pages, language_of
from .runtime import Runtime
from .settings import KeyPurpose

SIGN_IN = "/staff/sign-in"


def safe_next(path: str | None, default: str) -> str:
    """Only a path on this service: never an address elsewhere (an open redirect)."""
    parts = urlsplit(path or "")
    if not path or parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return default
    return path


@dataclass(frozen=True)
class Staff:
    email: str
    role: Role
    csrf: str


class SignIn:
    """One service's staff sign-in: who is listed, the links it mails and the sessions it starts."""

    def __init__(self, runtime: Runtime, *, public_url: str, listed: Mapping[str, Role], message: type[SignInLink],
                 home: str, limit: Callable[[web.Request], Awaitable[None]], pages: Pages):
        settings = runtime.settings
        self.service, self.settings, self.public_url = runtime.service, settings, public_url.rstrip("/")
        # An address listed twice keeps its highest role.
        self.listed = {email.lower(): role for email, role in sorted(listed.items(), key=lambda i: i[1] == Role.admin)}
        # Each link asked for is a document that carries its mail message (outbox) and, once used, says so.
        self.collection = runtime.db["staff_sign_ins"]
        self.outbox = Outbox(runtime.bus, [self.collection])
        self.message, self.home, self.limit, self.pages = message, home, limit, pages
        self.cookie = f"moteplass_{self.service}_staff"  # one per service: cookies do not keep ports apart
        self.link_ttl = timedelta(minutes=settings.staff_link_minutes)
        self.session_ttl = timedelta(minutes=settings.staff_session_minutes)
        self._link_key = settings.key(KeyPurpose(f"{self.service}.staff_link"))
        self._session_key = settings.key(KeyPurpose(f"{self.service}.staff_session"))
        self.secure = self.public_url.startswith("https://")

    async def start(self, runtime: Runtime) -> None:
        """Indexes, and the relay for link mails a crash or a broker outage left unpublished."""
        # A used or expired link is kept a day (for the record), then removed.
        await self.collection.create_index("created_at", expireAfterSeconds=24 * 3600)
        await self.outbox.ensure_indexes()
        await self.outbox.sweep(grace=timedelta(0))
        runtime.every(runtime.settings.relay_interval_s, self.outbox.sweep)

    # ---- links ----

    async def request_link(self, email: str, language, next_path: str) -> None:
        """Mail a sign-in link if the address is listed; an unlisted one gets nothing (and is told the same)."""
        email = email.strip().lower()
        role = self.listed.get(email)
        if role is None:
            return
        now = datetime.now(UTC)
        link_id = uuid.uuid4().hex
        token = jwt.encode({"sub": email, "role": role.value, "jti": link_id, "next": next_path, "iat": now,
                            "exp": now + self.link_ttl}, self._link_key, algorithm="HS256")
        event = make_event(self.message(email=email, role=role.value, language=language, expires_at=now + self.link_ttl,
                                        sign_in_url=f"{self.public_url}{SIGN_IN}/link?token={token}"),
                           source=f"/moteplass/{self.service}", subject=link_id, correlation_id=logs.request_id.get())
        entries = [outbox.entry(event)]
        await self.collection.insert_one({"_id": link_id, "role": role.value, "created_at": now, "used_at": None,
                                          **outbox.holding(entries)})
        await self.outbox.try_flush(self.collection, link_id, entries)

    def _read_link(self, token: str) -> dict | None:
        try:
            claims = jwt.decode(token, self._link_key, algorithms=["HS256"],
                                options={"require": ["sub", "role", "jti", "exp"]})
        except jwt.PyJWTError:
            return None
        return claims if self.listed.get(claims["sub"]) == Role(claims["role"]) else None  # still listed, same role

    async def redeem(self, token: str) -> tuple[str, str] | None:
        """(session cookie value, where to go) for a valid, unused link, which is then used up; else None."""
        claims = self._read_link(token)
        if claims is None:
            return None
        used = await self.collection.find_one_and_update(
            {"_id": claims["jti"], "used_at": None}, {"$set": {"used_at": datetime.now(UTC)}},
            projection={"_id": 1}, return_document=ReturnDocument.BEFORE)
        if used is None:
            return None
        now = datetime.now(UTC)
        session = jwt.encode({"sub": claims["sub"], "role": claims["role"], "csrf": secrets.token_urlsafe(24),
                              "iat": now, "exp": now + self.session_ttl}, self._session_key, algorithm="HS256")
        return session, safe_next(claims.get("next"), self.home)

    # ---- sessions ----

    def staff(self, request: web.Request) -> Staff | None:
        value = request.cookies.get(self.cookie)
        if not value:
            return None
        try:
            claims = jwt.decode(value, self._session_key, algorithms=["HS256"],
                                options={"require": ["sub", "role", "csrf", "exp"]})
        except jwt.PyJWTError:
            return None
        if self.listed.get(claims["sub"]) != Role(claims["role"]):  # taken off the list: the session ends too
            return None
        return Staff(claims["sub"], Role(claims["role"]), claims["csrf"])

    def require(self, request: web.Request, roles: set[Role]) -> Staff:
        """The signed-in staff member, or off to the sign-in page (and back here after)."""
        staff = self.staff(request)
        if staff is None or staff.role not in roles:
            raise web.HTTPSeeOther(f"{SIGN_IN}?next={quote(request.path_qs, safe='')}")
        return staff

    async def form(self, request: web.Request, staff: Staff) -> dict:
        """A staff page's posted form, once its CSRF token is checked (SameSite=Strict is the other half)."""
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), staff.csrf):
            raise ApiError(403, self.pages.text(language_of(request), "staff_form_stale"))
        return {k: form.getall(k) if len(form.getall(k)) > 1 else form[k] for k in form}

    def guard(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
              ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A staff page handler whose refusals (a stale form, a rule saying no) become an error page."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except ApiError as exc:
                return self.pages.error(language_of(request), exc.status, exc.message,
                                        link=(self.home, self.pages.text(language_of(request), "back")))
        return guarded

    def set_cookie(self, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(self.cookie, value, max_age=int(self.session_ttl.total_seconds()), path="/",
                            httponly=True, samesite="Strict", secure=self.secure)

    # ---- the routes ----

    def install(self, app: web.Application) -> None:
        app.router.add_get(SIGN_IN, self._ask)
        app.router.add_post(SIGN_IN, self._send)
        app.router.add_get(f"{SIGN_IN}/link", self._confirm)
        app.router.add_post(f"{SIGN_IN}/link", self._start)
        app.router.add_post("/staff/sign-out", self.guard(self._end))

    def page(self, request: web.Request, template: str, status: int = 200, **context) -> web.Response:
        """A staff page in the reader's language, with the signed-in person (if any) for its sign-out button."""
        return self.pages.render(template, language_of(request), status, staff=self.staff(request), **context)

    def _ask_again(self, request: web.Request, status: int, error: str, next_path: str, email: str = ""
                   ) -> web.Response:
        return self.page(request, "staff_sign_in.html.j2", status, next=next_path, email=email,
                         errors={"email": self.pages.text(language_of(request), error)})

    async def _ask(self, request: web.Request) -> web.Response:
        return self.page(request, "staff_sign_in.html.j2", next=safe_next(request.query.get("next"), self.home),
                         email="")

    async def _send(self, request: web.Request) -> web.Response:
        await self.limit(request)
        form = await request.post()
        email, next_path = str(form.get("email", "")).strip(), safe_next(str(form.get("next", "")), self.home)
        if "@" not in email or len(email) > 254:
            return self._ask_again(request, 422, "staff_email_invalid", next_path, email)
        await self.request_link(email, language_of(request), next_path)
        return self.page(request, "staff_sign_in_sent.html.j2", email=email)

    async def _confirm(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if self._read_link(token) is None:
            return self._ask_again(request, 403, "staff_link_used", self.home)
        return self.page(request, "staff_sign_in_link.html.j2", token=token)

    async def _start(self, request: web.Request) -> web.Response:
        redeemed = await self.redeem(str((await request.post()).get("token", "")))
        if redeemed is None:
            return self._ask_again(request, 403, "staff_link_used", self.home)
        session, next_path = redeemed
        response = web.HTTPSeeOther(next_path)
        self.set_cookie(response, session)
        raise response

    async def _end(self, request: web.Request) -> web.Response:
        staff = self.staff(request)
        if staff is not None:
            await self.form(request, staff)
        response = web.HTTPSeeOther(SIGN_IN)
        response.del_cookie(self.cookie, path="/")
        raise response

