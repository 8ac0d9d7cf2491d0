"""Server-rendered pages for people (every link in a mail opens one): Jinja2 templates, autoescaped, on one shared
layout and stylesheet, with texts in nn (default), nb and en. They need no JavaScript; forms POST, and the secret
token from the mail authorises each (it travels in the form, so no cookie is involved and another site cannot
forge a request without it)."""

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import cache, wraps
from importlib.resources import files

import yaml
from aiohttp import web
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

from .http import RETRY_AFTER_S
from .messages import Language
from .mongo import unavailable as store_unavailable

log = logging.getLogger(__name__)

# Pages carry secret links: never cached, never passed on in a Referer, never framed by another site.
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "X-Content-Type-Options": "nosniff"}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def _texts(package: str) -> dict[str, dict[str, str]]:
    return yaml.safe_load(files(package).joinpath("templates/texts.yaml").read_text("utf-8"))


def language_of(request: web.Request, known: Language | str | None = None) -> Language:
    """The reader's language: the one their registration or mail was in (`known`), else `?lang=`, else the first
    of nn/nb/en their browser asks for, else nn."""
    if known:
        return Language(known)
    if request.query.get("lang") in Language.__members__:
        return Language(request.query["lang"])
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        for language in Language:
            if tag == language or tag.startswith(f"{language}-"):
                return language
    return Language.nn


class Pages:
    """One service's pages: its own templates and texts over the shared layout's."""

    def __init__(self, package: str):
        self.env = Environment(loader=ChoiceLoader([PackageLoader(package, "templates"),
                                                    PackageLoader("shared", "templates")]),
                               autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               auto_reload=False)
        self.texts = {**_texts("shared"), **_texts(package)}

    def text(self, language: Language, key: str, **values) -> str:
        return self.texts[key][language.value].format(**values)

    def render(self, template: str, language: Language, status: int = 200, errors: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
               **context) -> web.Response:
        """A page; `errors` (field → message) fill the error summary, each entry named by its field's label
        (`labels`, field → label) and linked to the field, and mark the fields."""
        html = self.env.get_template(template).render(
            t=lambda key, **values: self.text(language, key, **values), lang=language.value,
            errors=dict(errors or {}), labels=dict(labels or {}), **context)
        return web.Response(text=html, content_type="text/html", status=status, headers={**HEADERS, **(headers or {})})

    def error(self, language: Language, status: int, message: str, what_to_do: str | None = None,
              link: tuple[str, str] | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
        """An error as a page: what went wrong, what to do about it, and where to go (href, text)."""
        return self.render("error.html.j2", language, status, headers=headers, message=message,
                           what_to_do=what_to_do, link=link)

    def refusals_as_pages(self, *refusals: type[Exception]) -> Callable[[Handler], Handler]:
        """A decorator: a refusal (an exception with `status` and `message`, and maybe `headers`) that a page does
        not answer itself becomes an error page in the reader's language. A link that is damaged, matches nothing
        or carries a wrong token says so and what to do, whatever the service's message."""
        def decorate(handler: Handler) -> Handler:
            @wraps(handler)
            async def page(request: web.Request) -> web.StreamResponse:
                try:
                    return await handler(request)
                except refusals as exc:
                    language, status = language_of(request), exc.status
                    headers = getattr(exc, "headers", None)
                    if status in (400, 403, 404):
                        return self.error(language, status, self.text(language, "link_wrong"),
                                          self.text(language, "link_wrong_help"))
                    return self.error(language, status, exc.message, headers=headers)
                except web.HTTPException:
                    raise  # a redirect after a form, or aiohttp's own answer
                except Exception as exc:  # as the JSON routes answer them (shared.http), but as a page
                    language = language_of(request)
                    if store_unavailable(exc):
                        log.warning("store unavailable: %r", exc)
                        return self.error(language, 503, self.text(language, "unavailable"),
                                          self.text(language, "try_again_soon"),
                                          headers={"Retry-After": str(RETRY_AFTER_S)})
                    log.exception("unhandled error")
                    return self.error(language, 500, self.text(language, "error_title"),
                                      self.text(language, "try_again_later"))
            return page
        return decorate


def field_errors(details: list[dict] | None) -> dict[str, str]:
    """A 422's per-field details (see shared.http.field_errors) as field → first message."""
    errors: dict[str, str] = {}
    for detail in details or []:
        errors.setdefault(detail.get("field") or "body", detail["message"])
    return errors


async def form(request: web.Request) -> dict[str, list[str]]:
    """A posted form (urlencoded or multipart) as name → every value given."""
    data = await request.post()
    return {name: [str(v) for v in data.getall(name)] for name in data.keys()}
