"""Pages for people, behind every link the registration mails carry: the møteplass with its registration form
(a guest's invitation opens it), managing one's registration (status, place in line, details and calendar file,
answers, a guest, one's data, cancelling, erasing) and confirming an email address. Server-rendered, no JavaScript
needed; they call the same use cases as the JSON routes. The token in the link authorises each page and each form
(the forms post back to the link, token included). And the door page for staff, behind the mailed-link sign-in."""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from shared.auth import Role
from shared.http import ApiError, field_errors as validation_details
from shared.messages import Language
from shared.pages import Pages, field_errors, form, language_of
from shared.staff import SignIn

from . import domain
from .domain import Event, OrganisationType, QuestionKind, Refused, Registration, Status
from .models import AnswersIn, GuestInviteIn, RegistrationIn
from .routes import export_response, flows, rate_limit
from .service import CANCELLABLE, NOT_FOUND, now

pages = Pages("services.registration")
routes = web.RouteTableDef()
page = pages.refusals_as_pages(Refused, ApiError)


# ---- the møteplass and its registration form ---------------------------------------------------------------------

def event_view(event: Event, language: Language) -> dict:
    """What a page shows of a møteplass: its texts, and its time in its own timezone and the reader's language."""
    return {**asdict(event), "seats_left": domain.seats_left(event),
            "when": domain.local_span(event.starts_at, event.ends_at, event.timezone, language.value)}


def registration_input(fields: dict[str, list[str]], questions: list[dict], language: Language) -> dict:
    """The posted form as the JSON API's registration body (so the same model checks it)."""
    one = lambda name: (fields.get(name) or [""])[0].strip()  # noqa: E731
    number, municipality = one("municipality.number"), one("municipality.name")
    return {"name": one("name"), "email": one("email"), "phone": one("phone") or None,
            "organisation": one("organisation"), "organisation_type": one("organisation_type") or "anna",
            "municipality": {"number": number, "name": municipality} if number or municipality else None,
            "language": language.value, "answers": answers_input(fields, questions),
            "invite_code": one("invite_code") or None, "consent": one("consent") == "true"}


def answers_input(fields: dict[str, list[str]], questions: list[dict]) -> dict:
    answers: dict = {}
    for question in questions:
        given = [v for v in fields.get(f"answers.{question['id']}", []) if v.strip()]
        if question["kind"] == QuestionKind.multiple_choice:
            answers[question["id"]] = given
        elif given:
            answers[question["id"]] = given[0].strip()
    return answers


def invalid_form(exc: Refused | ValidationError) -> dict[str, str]:
    details = exc.details if isinstance(exc, Refused) else validation_details(exc)
    # The model's rule across fields (a municipality for a kommune) belongs to the municipality's field.
    return field_errors([{**d, "field": "municipality.number"} if d.get("type") == "municipality_required" else d
                         for d in details])


def answer_labels(event: Event) -> dict[str, str]:
    return {f"answers.{question['id']}": question["text"] for question in event.questions}


def form_labels(event: Event, language: Language) -> dict[str, str]:
    """Each field of the registration form by its label, for the error summary."""
    fields = ("name", "email", "phone", "organisation", "organisation_type", "municipality.number",
              "municipality.name", "invite_code")
    return {**{field: pages.text(language, field.replace(".", "_")) for field in fields},
            "consent": pages.text(language, "consent_label"), **answer_labels(event)}


@routes.get("/events/{slug}/register")
@page
async def event_page(request: web.Request) -> web.Response:
    event = await flows(request).public_event(request.match_info["slug"])  # a draft is not there yet
    language = language_of(request, request.query.get("lang") or event.language)
    return event_form(event, language, {"invite_code": request.query.get("invite", "")})


def event_form(event: Event, language: Language, values: dict, errors: dict | None = None,
               status: int = 200) -> web.Response:
    try:
        domain.check_window(event, now())
        closed = None
    except Refused as refused:
        closed = refused.message
    return pages.render("event.html.j2", language, status, errors=errors, labels=form_labels(event, language),
                        event=event_view(event, language),
                        values=defaultdict(str, values), closed=closed, organisation_types=[(t.value, pages.text(language, f"org_{t.name}")) for t in OrganisationType],
                        lang_query=urlencode({"lang": language.value}))


@routes.post("/events/{slug}/register")
@page
async def register(request: web.Request) -> web.Response:
    registrations = flows(request)
    event = await registrations.public_event(request.match_info["slug"])
    language = language_of(request, request.query.get("lang") or event.language)
    fields = await form(request)
    values = registration_input(fields, event.questions, language)
    await rate_limit(request)
    try:
        registration = await registrations.register(event.slug, RegistrationIn.model_validate(values))
    except (Refused, ValidationError) as exc:
        if isinstance(exc, Refused) and not exc.details:
            raise
        return event_form(event, language, {**values, **{k: v[0] for k, v in fields.items() if v}},
                          invalid_form(exc), 422)
    event = await registrations.event(event.slug)
    return pages.render("registered.html.j2", language, event=event_view(event, language),
                        registration=registration)


# ---- managing one's registration ---------------------------------------------------------------------------------

def token_of(request: web.Request) -> str:
    token = request.query.get("token", "")
    if not 0 < len(token) <= 200:
        raise Refused(NOT_FOUND, 404)
    return token


def manage_link(request: web.Request, action: str = "", **query) -> str:
    return domain.manage_url("", request.match_info["id"], token_of(request), action) + (
        f"&{urlencode(query)}" if query else "")


async def manage_page(request: web.Request, registration: Registration | None = None, errors: dict | None = None,
                      problem: str | None = None, status: int = 200, values: dict | None = None) -> web.Response:
    registrations = flows(request)
    registration = registration or await registrations.view(request.match_info["id"], token_of(request))
    event = await registrations.event(registration.event_slug)
    language = registration.language
    try:
        domain.check_can_invite(registration, event, "")
        domain.check_window(event, now())
        can_invite = True
    except Refused:
        can_invite = False
    return pages.render(
        "manage.html.j2", language, status, errors=errors, registration=registration,
        labels={**answer_labels(event), "email": pages.text(language, "guest_email")},
        event=event_view(event, language), can_invite=can_invite, problem=problem, done=request.query.get("done"),
        cancellable=registration.status in CANCELLABLE, answers=values or registration.answers,
        link=lambda action="", **query: manage_link(request, action, **query),
        data_link=f"/registrations/{registration.id}/data?token={token_of(request)}", guest=values or {})


@routes.get("/registrations/{id}/manage")
@page
async def manage(request: web.Request) -> web.Response:
    return await manage_page(request)


async def manage_action(request: web.Request, action: Callable[[Registration, dict], Awaitable[None]], done: str
                        ) -> web.StreamResponse:
    """A form on the manage page: done → back to the page with a notice; refused → the page with the reason."""
    registration = await flows(request).view(request.match_info["id"], token_of(request))
    fields = await form(request)
    try:
        await action(registration, fields)
    except (Refused, ValidationError) as exc:
        if isinstance(exc, Refused) and not exc.details:
            return await manage_page(request, registration, problem=exc.message, status=exc.status)
        return await manage_page(request, registration, errors=invalid_form(exc), status=422,
                                 values={k: v[0] if len(v) == 1 else v for k, v in fields.items()})
    raise web.HTTPSeeOther(manage_link(request, done=done))


@routes.post("/registrations/{id}/manage/answers")
@page
async def change_answers(request: web.Request) -> web.StreamResponse:
    async def change(registration: Registration, fields: dict) -> None:
        event = await flows(request).event(registration.event_slug)
        body = AnswersIn.model_validate({"answers": answers_input(fields, event.questions)})
        await flows(request).change_answers(registration.id, token_of(request), body.answers)
    return await manage_action(request, change, "answers")


@routes.post("/registrations/{id}/manage/guest")
@page
async def invite_guest(request: web.Request) -> web.StreamResponse:
    async def invite(registration: Registration, fields: dict) -> None:
        body = GuestInviteIn.model_validate({"email": (fields.get("email") or [""])[0].strip()})
        await rate_limit(request)
        await flows(request).invite_guest(registration.id, token_of(request), body.email)
    return await manage_action(request, invite, "guest")


@routes.get("/registrations/{id}/manage/calendar.ics")
@page
async def calendar(request: web.Request) -> web.Response:
    registration = await flows(request).view(request.match_info["id"], token_of(request))
    event = await flows(request).event(registration.event_slug)
    return web.Response(body=domain.calendar(event, registration), content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{event.slug}.ics"'})


async def confirm_step(request: web.Request, template: str,
                       act: Callable[[Registration], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """A step that asks before it acts: GET shows the question and its button (a mail scanner fetching the link
    changes nothing), POST acts."""
    registration = await flows(request).view(request.match_info["id"], token_of(request))
    language = registration.language
    if request.method == "POST":
        return await act(registration)
    event = await flows(request).event(registration.event_slug)
    return pages.render(template, language, registration=registration, event=event_view(event, language),
                        back=manage_link(request), cancellable=registration.status in CANCELLABLE,
                        what="waitlist" if registration.status == Status.waitlisted else "seat")


@routes.route("*", "/registrations/{id}/manage/cancel")
@page
async def cancel(request: web.Request) -> web.StreamResponse:
    async def act(registration: Registration) -> web.StreamResponse:
        try:
            await flows(request).cancel(registration.id, token_of(request))
        except Refused as refused:
            return await manage_page(request, registration, problem=refused.message, status=refused.status)
        raise web.HTTPSeeOther(manage_link(request, done="cancelled"))
    return await confirm_step(request, "cancel.html.j2", act)


@routes.route("*", "/registrations/{id}/manage/erase")
@page
async def erase(request: web.Request) -> web.StreamResponse:
    async def act(registration: Registration) -> web.StreamResponse:
        await flows(request).erase(registration.id, "request", token=token_of(request))
        return pages.render("erased.html.j2", registration.language)
    return await confirm_step(request, "erase.html.j2", act)


@routes.route("*", "/registrations/{id}/manage/confirm")
@page
async def confirm(request: web.Request) -> web.StreamResponse:
    async def act(registration: Registration) -> web.StreamResponse:
        await rate_limit(request)
        try:
            await flows(request).confirm(registration.id, token_of(request))
        except Refused as refused:
            if refused.status != 410:
                raise
            language = registration.language
            return pages.error(language, 410, pages.text(language, "link_expired"),
                               pages.text(language, "confirm_expired_help"),
                               (f"/events/{registration.event_slug}/register?lang={language.value}",
                                pages.text(language, "register_again")))
        raise web.HTTPSeeOther(manage_link(request, done="confirmed"))
    return await confirm_step(request, "confirm.html.j2", act)


# ---- the door (staff) ------------------------------------------------------------------------------------------
# For admins signed in by a mailed link (shared.staff): find a participant by name, check in, counts, the list.

SIGN_IN = web.AppKey("sign_in", SignIn)
DOOR = "/door"
ADMIN = {Role.admin}


def door_url(slug: str, **query) -> str:
    query = {k: v for k, v in query.items() if v}
    return f"{DOOR}/{slug}" + (f"?{urlencode(query)}" if query else "")


async def door_events(request: web.Request) -> web.Response:
    """Which møteplass the door is for."""
    sign_in = request.app[SIGN_IN]
    sign_in.require(request, ADMIN)
    return sign_in.page(request, "door_events.html.j2", events=await flows(request).listed_events())


async def door(request: web.Request) -> web.Response:
    """Counts, and the seat holders whose name matches what was typed (all of them when nothing was)."""
    sign_in = request.app[SIGN_IN]
    sign_in.require(request, ADMIN)
    registrations, slug = flows(request), request.match_info["slug"]
    query = request.query.get("q", "").strip()[:100]
    try:
        event = await registrations.event(slug)
    except Refused:
        return sign_in.page(request, "door_events.html.j2", 404, events=await registrations.listed_events())
    counts = await registrations.counts(slug)
    participants = await registrations.participants(slug, query)
    checked = next((p for p in participants if p.id == request.query.get("checked")), None)
    return sign_in.page(request, "door.html.j2", event=event, query=query, participants=participants,
                        checked=checked, problem=request.query.get("problem", "")[:300],
                        checked_in=counts.get(Status.checked_in, 0),
                        seats=counts.get(Status.confirmed, 0) + counts.get(Status.checked_in, 0),
                        waitlisted=counts.get(Status.waitlisted, 0))


async def door_check_in(request: web.Request) -> web.Response:
    sign_in = request.app[SIGN_IN]
    staff = sign_in.require(request, ADMIN)
    fields = await sign_in.form(request, staff)
    slug, query = request.match_info["slug"], str(fields.get("q", ""))
    try:
        checked = await flows(request).check_in(str(fields.get("id", "")), staff.email)
    except Refused as refused:
        raise web.HTTPSeeOther(door_url(slug, q=query, problem=refused.message)) from None
    raise web.HTTPSeeOther(door_url(slug, q=query, checked=checked.id))


async def door_csv(request: web.Request) -> web.StreamResponse:
    request.app[SIGN_IN].require(request, ADMIN)
    return await export_response(request)


def install_door(app: web.Application) -> None:
    guard = app[SIGN_IN].guard
    app.router.add_get(DOOR, guard(door_events))
    app.router.add_get(DOOR + "/{slug}", guard(door))
    app.router.add_post(DOOR + "/{slug}/check-in", guard(door_check_in))
    app.router.add_get(DOOR + "/{slug}/registrations.csv", guard(door_csv))
