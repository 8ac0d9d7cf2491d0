"""HTTP entrypoints: validate, authorise, call a flow, shape the answer."""

from datetime import timedelta

from aiohttp import web
from pydantic_core import to_jsonable_python

from shared.auth import AuthError, Role, actor
from shared.http import VERIFIER, Api, ApiError
from shared.ratelimit import RateLimits, client_ip

from . import domain
from .models import (
    AnswersIn, EventAdminOut, EventIn, EventOut, EventUpdate, GuestInviteIn, GuestInviteOut, RegistrationAdminOut,
    RegistrationFilter, RegistrationIn, RegistrationOut, RegistrationPage, TokenQuery,
)
from .config import RegistrationConfig
from .domain import Event, Refused, Registration
from .service import Registrations

REGISTRATIONS = web.AppKey("registrations", Registrations)
CONFIG = web.AppKey("config", RegistrationConfig)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
RATE_LIMITED = {429: "Too many requests from this address (see Retry-After)"}
ADMIN = {Role.admin}
NOT_OWN = {404: "No such registration, or the token does not match"}

api = Api("Møteplass registration", description="Møteplassar, registrations with atomic seats and a waiting list.")


def flows(request: web.Request) -> Registrations:
    return request.app[REGISTRATIONS]


def event_out(event: Event, model: type[EventOut] = EventOut) -> EventOut:
    return model(**{k: getattr(event, k) for k in model.model_fields if k not in ("seats_left", "waitlist_length")},
                 seats_left=domain.seats_left(event), waitlist_length=len(event.waitlist))


def registration_out(registration: Registration, model: type[RegistrationOut] = RegistrationOut) -> RegistrationOut:
    # A field without a value (None) shows as the model's default.
    shown = {k: value for k in model.model_fields if (value := getattr(registration, k, None)) is not None}
    # An erased registration keeps no personal data: its row shows status, time and anonymous fields only.
    if registration.status == domain.Status.erased:
        shown.pop("email", None)
    return model(**shown)


async def is_admin(request: web.Request) -> bool:
    """Whether a route open to everyone may show this request what only admins see (drafts)."""
    try:
        await request.app[VERIFIER].require(request.headers.get("Authorization"), ADMIN)
    except AuthError:
        return False
    return True


async def rate_limit(request: web.Request) -> None:
    """Public POSTs per client IP per minute, counted across every instance."""
    config = request.app[CONFIG]
    await request.app[RATE_LIMITS].enforce(
        client_ip(request, flows(request).settings.trusted_proxies), config.posts_per_minute, timedelta(minutes=1),
        "For mange førespurnader frå denne adressa. Vent litt og prøv igjen.")


@web.middleware
async def refusals(request: web.Request, handler) -> web.StreamResponse:
    """A rule's refusal becomes a clear JSON error (inside the shared request context, which writes it)."""
    try:
        return await handler(request)
    except Refused as exc:
        raise ApiError(exc.status, exc.message, exc.details) from exc


@api.route("POST", "/events", body=EventIn, response=EventAdminOut, status=201, roles=ADMIN,
           errors={409: "A møteplass with this slug exists"})
async def create_event(request: web.Request, body: EventIn, claims: dict) -> EventAdminOut:
    """Create a møteplass (open for registration at once)."""
    return event_out(await flows(request).create_event(body, actor(claims)), EventAdminOut)


@api.route("PATCH", "/events/{slug}", body=EventUpdate, response=EventAdminOut, roles=ADMIN,
           errors={404: "No such møteplass", 409: "Capacity below the seats held, or changed meanwhile"})
async def update_event(request: web.Request, body: EventUpdate, claims: dict) -> EventAdminOut:
    """Change a møteplass. A raised capacity promotes from the waiting list at once; a new time or place is
    announced (event.updated)."""
    return event_out(await flows(request).update_event(request.match_info["slug"], body, actor(claims)),
                     EventAdminOut)


@api.route("POST", "/events/{slug}/publish", response=EventAdminOut, roles=ADMIN,
           errors={404: "No such møteplass", 409: "Cancelled"})
async def publish_event(request: web.Request, claims: dict) -> EventAdminOut:
    """Open a draft møteplass for registration (event.published)."""
    return event_out(await flows(request).publish_event(request.match_info["slug"], actor(claims)), EventAdminOut)


@api.route("POST", "/events/{slug}/cancel", response=EventAdminOut, roles=ADMIN, errors={404: "No such møteplass"})
async def cancel_event(request: web.Request, claims: dict) -> EventAdminOut:
    """Cancel a møteplass: every registration is cancelled and everyone told."""
    return event_out(await flows(request).cancel_event(request.match_info["slug"], actor(claims)), EventAdminOut)


@api.route("GET", "/events", response=list[EventOut])
async def list_events(request: web.Request) -> list[EventOut]:
    """All møteplassar, soonest first, with seats left."""
    return [event_out(event) for event in await flows(request).listed_events()]


@api.route("GET", "/events/{slug}", response=EventOut, errors={404: "No such møteplass (a draft, but to admins)"})
async def get_event(request: web.Request) -> EventOut:
    """One møteplass, with seats left. A draft is shown only with an admin token."""
    slug = request.match_info["slug"]
    flow = flows(request)
    return event_out(await (flow.event(slug) if await is_admin(request) else flow.public_event(slug)))


@api.route("POST", "/events/{slug}/registrations", body=RegistrationIn, response=RegistrationOut, status=201,
           errors={404: "No such møteplass", 409: "Already registered, or registration is not open", **RATE_LIMITED})
async def register(request: web.Request, body: RegistrationIn) -> RegistrationOut:
    """Register: a seat if one is free, else a place on the waiting list. The personal link comes by email."""
    await rate_limit(request)
    return registration_out(await flows(request).register(request.match_info["slug"], body))


@api.route("GET", "/registrations/{id}", query=TokenQuery, response=RegistrationOut,
           errors={404: "No such registration, or the token does not match"})
async def view_registration(request: web.Request, query: TokenQuery) -> RegistrationOut:
    """The participant's own registration (secret link from the email)."""
    return registration_out(await flows(request).view(request.match_info["id"], query.token))


@api.route("POST", "/registrations/{id}/confirm", query=TokenQuery, response=RegistrationOut,
           errors={**NOT_OWN, 410: "The link has expired", **RATE_LIMITED})
async def confirm_registration(request: web.Request, query: TokenQuery) -> RegistrationOut:
    """Confirm the email address: the registration now takes a seat or a waiting-list place."""
    await rate_limit(request)
    return registration_out(await flows(request).confirm(request.match_info["id"], query.token))


@api.route("DELETE", "/registrations/{id}", query=TokenQuery, status=204,
           errors={404: "No such registration, or the token does not match", 409: "Cannot be cancelled now"})
async def cancel_registration(request: web.Request, query: TokenQuery) -> None:
    """Cancel (or leave the waiting list) by the secret link; the seat goes to the first in line at once."""
    await flows(request).cancel(request.match_info["id"], query.token)


@api.route("PATCH", "/registrations/{id}", query=TokenQuery, body=AnswersIn, response=RegistrationOut,
           errors={**NOT_OWN, 409: "Cancelled: a cancelled registration cannot be changed"})
async def change_answers(request: web.Request, query: TokenQuery, body: AnswersIn) -> RegistrationOut:
    """Change one's answers to the møteplass's questions (by the secret link)."""
    return registration_out(await flows(request).change_answers(request.match_info["id"], query.token,
                                                                         body.answers))


@api.route("GET", "/registrations/{id}/data", query=TokenQuery, errors=NOT_OWN)
async def download_own_data(request: web.Request, query: TokenQuery) -> web.Response:
    """Everything stored about the participant, as JSON to keep (by the secret link)."""
    data = await flows(request).own_data(request.match_info["id"], query.token)
    return web.json_response(to_jsonable_python(data), headers={
        "Content-Disposition": f'attachment; filename="moteplass-{request.match_info["id"]}.json"'})


@api.route("DELETE", "/registrations/{id}/data", query=TokenQuery, status=204, errors=NOT_OWN)
async def erase_own_data(request: web.Request, query: TokenQuery) -> None:
    """Erase one's own data (by the secret link); a seat held goes to the first in line."""
    await flows(request).erase(request.match_info["id"], "request", token=query.token)


@api.route("GET", "/events/{slug}/registrations", query=RegistrationFilter, response=RegistrationPage, roles=ADMIN,
           errors={404: "No such møteplass"})
async def list_registrations(request: web.Request, query: RegistrationFilter, claims: dict) -> RegistrationPage:
    """An event's registrations in arrival order, filtered, a page at a time."""
    items, cursor = await flows(request).registrations_of(request.match_info["slug"], query)
    return RegistrationPage(items=[registration_out(r, RegistrationAdminOut) for r in items], next_cursor=cursor)


@api.route("GET", "/events/{slug}/registrations.csv", roles=ADMIN, errors={404: "No such møteplass"},
           media="text/csv")
async def export_registrations(request: web.Request, claims: dict) -> web.Response:
    """The participant list for Excel (UTF-8 with BOM, Norwegian headers, one column per question)."""
    return await export_response(request)


async def export_response(request: web.Request) -> web.Response:
    """The CSV file of the møteplass in the path (for this route and the door page)."""
    slug = request.match_info["slug"]
    text = await flows(request).export(slug)
    return web.Response(body=text.encode("utf-8"), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{slug}.csv"',
                                 "Cache-Control": "no-store"})


@api.route("GET", "/events/{slug}/counts", response=dict[str, int], roles=ADMIN, errors={404: "No such møteplass"})
async def count_registrations(request: web.Request, claims: dict) -> dict[str, int]:
    """How many registrations there are in each status."""
    return await flows(request).counts(request.match_info["slug"])


@api.route("POST", "/registrations/{id}/check-in", response=RegistrationAdminOut, roles=ADMIN,
           errors={404: "No such registration", 409: "Not a confirmed participant"})
async def check_in(request: web.Request, claims: dict) -> RegistrationAdminOut:
    """Check a participant in at the door."""
    return registration_out(await flows(request).check_in(request.match_info["id"], actor(claims)),
                            RegistrationAdminOut)


@api.route("POST", "/registrations/{id}/cancel", status=204, roles=ADMIN,
           errors={404: "No such registration", 409: "Cannot be cancelled now"})
async def cancel_registration_as_admin(request: web.Request, claims: dict) -> None:
    """Cancel a registration (or a waiting-list place) for the participant; the seat goes to the first in line
    at once, and the participant is told (reason admin)."""
    await flows(request).cancel(request.match_info["id"], actor=actor(claims))


@api.route("POST", "/registrations/{id}/erase", status=204, roles=ADMIN, errors={404: "No such registration"})
async def erase_registration(request: web.Request, claims: dict) -> None:
    """Erase a person's data on their request (GDPR); other services are told to erase their copies."""
    await flows(request).erase(request.match_info["id"], "request", actor=actor(claims))


@api.route("POST", "/registrations/{id}/guest-invites", query=TokenQuery, body=GuestInviteIn, response=GuestInviteOut,
           status=201, errors={**NOT_OWN, 409: "Not allowed to invite, or the municipality's guest quota is used",
                               **RATE_LIMITED})
async def invite_guest(request: web.Request, query: TokenQuery, body: GuestInviteIn) -> GuestInviteOut:
    """Invite one guest from outside one's municipality; the guest gets a single-use code by email."""
    await rate_limit(request)
    invite = await flows(request).invite_guest(request.match_info["id"], query.token, body.email)
    return GuestInviteOut(event_slug=invite.event_slug, municipality=invite.municipality_name,
                          guest_email=invite.guest_email)
