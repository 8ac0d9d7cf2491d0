"""HTTP plumbing for every service: typed routes that document themselves (OpenAPI from the Pydantic models),
JSON errors with per-field details, request ids, health, readiness and Prometheus metrics."""

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp_cors
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import logs, tracing
from .auth import AuthError, Role, Verifier
from .mongo import unavailable as store_unavailable

log = logging.getLogger(__name__)

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

SERVICE = web.AppKey("service", str)
VERIFIER = web.AppKey("verifier", Verifier)
READY_CHECKS = web.AppKey("ready_checks", dict)
# Who may read /metrics: those who send this bearer token; without one, everyone or (in production) nobody.
METRICS_TOKEN = web.AppKey("metrics_token", str | None)
METRICS_OPEN = web.AppKey("metrics_open", bool)
TRACER = web.AppKey("tracer", Tracer)
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes would bury the traces worth reading

# A request id from outside goes into logs, answers and events only if it looks like one (a UUID, a trace id);
# anything else is replaced by a fresh one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# JSON bodies nest no deeper than this: no route takes more than a few levels, and a deeper document only costs.
MAX_JSON_DEPTH = 32
JSON_TYPES = ("application/json",)
RETRY_AFTER_S = 5  # what a 503 for a store outage asks the client to wait

# Norwegian (nn) field messages for the errors a form is most likely to meet; pydantic's own text goes along.
FIELD_MESSAGES = {
    "missing": "Feltet er obligatorisk.",
    "string_type": "Feltet må vere tekst.",
    "string_too_short": "Feltet er for kort.",
    "string_too_long": "Feltet er for langt.",
    "bool_type": "Feltet må vere sant eller usant.",
    "bool_parsing": "Feltet må vere sant eller usant.",
    "int_type": "Feltet må vere eit heiltal.",
    "int_parsing": "Feltet må vere eit heiltal.",
    "value_error": "Verdien er ikkje gyldig.",
    "literal_error": "Verdien er ikkje ein av dei tillatne.",
    "enum": "Verdien er ikkje ein av dei tillatne.",
    "extra_forbidden": "Feltet er ukjent.",
    "datetime_type": "Feltet må vere eit tidspunkt.",
    "datetime_parsing": "Feltet må vere eit tidspunkt (ISO 8601).",
    "timezone_aware": "Tidspunktet må ha tidssone.",
    "greater_than_equal": "Talet er for lite.",
    "less_than_equal": "Talet er for stort.",
    "model_type": "Feltet må vere eit objekt.",
    "list_type": "Feltet må vere ei liste.",
}


def error_body(status: int, message: str, details: list[dict] | None = None) -> dict:
    body = {"error": {"status": status, "message": message, "request_id": logs.request_id.get()}}
    if details:
        body["error"]["details"] = details
    return body


def json_error(status: int, message: str, details: list[dict] | None = None, headers: dict | None = None) -> web.Response:
    return web.json_response(error_body(status, message, details), status=status, headers=headers)


class ApiError(Exception):
    """A domain refusal that maps to a clear 4xx (409 conflict, 404 not found, …)."""

    def __init__(self, status: int, message: str, details: list[dict] | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.details, self.headers = status, message, details, headers


def field_errors(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body",
         "message": FIELD_MESSAGES.get(err["type"], err["msg"]), "detail": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def validation_error(exc: ValidationError) -> ApiError:
    return ApiError(422, "Nokre felt er ikkje rett utfylte.", field_errors(exc))


@web.middleware
async def request_context(request: web.Request, handler):
    rid = request.headers.get("X-Request-Id", "")
    if not REQUEST_ID.fullmatch(rid):
        rid = uuid.uuid4().hex
    token = logs.request_id.set(rid)
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    tracer = tracing.OFF if route in UNTRACED else request.app[TRACER]
    try:
        # A span continuing the caller's W3C trace context (traceparent header), if it sent one.
        with tracing.span(tracer, f"{request.method} {route}", SpanKind.SERVER, request.headers,
                          {"http.request.method": request.method, "http.route": route},
                          set_status_on_exception=False) as span:  # only redirects get through: not errors
            response = await _errors_as_json(request, handler)
            status = response.status
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        service = request.app[SERVICE]
        REQUESTS.labels(service, request.method, route, str(status)).inc()
        LATENCY.labels(service, request.method, route).observe(time.perf_counter() - started)
        logs.request_id.reset(token)


async def _errors_as_json(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message, exc.details, exc.headers)
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return json_error(exc.status, str(exc), headers=headers)
    except ValidationError as exc:
        err = validation_error(exc)
        return json_error(err.status, err.message, err.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: "Fann ikkje det du leitar etter.", 405: "Metoden er ikkje tillaten her."}.get(exc.status, exc.reason)
        return json_error(exc.status, message, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception as exc:
        if store_unavailable(exc):  # a dependency's outage, not a bug: the client may try again shortly
            log.warning("store unavailable: %r", exc)
            return json_error(503, "Tenesta er mellombels utilgjengeleg. Prøv igjen om litt.",
                              headers={"Retry-After": str(RETRY_AFTER_S)})
        log.exception("unhandled error")
        return json_error(500, "Noko gjekk gale hos oss. Prøv igjen seinare.")


async def read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    # JSON only: a form or text/plain POST, which a browser sends cross-site without asking (no CORS preflight),
    # is refused before anything is read.
    if request.content_type not in JSON_TYPES:
        raise ApiError(415, "Innhaldet må vere JSON, sendt med Content-Type: application/json.",
                       headers={f"Accept-{request.method.title()}": "application/json"})
    try:
        raw = await request.read()
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Innhaldet er ikkje gyldig JSON.") from exc
    except RecursionError as exc:
        raise ApiError(400, TOO_DEEP) from exc
    # Only a body with more opening brackets than the limit can nest deeper (most have a handful): walk only those.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nested_deeper(data, MAX_JSON_DEPTH):
        raise ApiError(400, TOO_DEEP)
    if not isinstance(data, dict):
        raise ApiError(422, "Innhaldet må vere eit JSON-objekt.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc


TOO_DEEP = f"Innhaldet er nøsta for djupt: JSON med meir enn {MAX_JSON_DEPTH} nivå vert ikkje teke imot."


def nested_deeper(data: Any, limit: int) -> bool:
    """Whether parsed JSON nests objects and arrays more than `limit` deep (walked level by level, not by
    recursion, and only through the objects and arrays)."""
    level = [data] if isinstance(data, dict | list) else []
    for _ in range(limit):
        level = [child for value in level for child in (value.values() if isinstance(value, dict) else value)
                 if isinstance(child, dict | list)]
        if not level:
            return False
    return bool(level)


def read_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc) from exc


@dataclass
class Reply:
    """A handler result whose status or headers differ from the route's default."""

    body: Any
    status: int = 200
    headers: dict = field(default_factory=dict)


def to_json(body: Any) -> Any:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json")
    if isinstance(body, list):
        return [to_json(item) for item in body]
    return body


def respond(result: Any, status: int) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, Reply):
        return web.json_response(to_json(result.body), status=result.status, headers=result.headers)
    if result is None:
        return web.Response(status=204)
    return web.json_response(to_json(result), status=status)


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    roles: set[Role] | None
    errors: dict[int, str]
    media: str


JSON = "application/json"
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["status", "message", "request_id"], "properties": {
        "status": {"type": "integer"}, "message": {"type": "string"}, "request_id": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}, "detail": {"type": "string"},
            "type": {"type": "string"}}}}}}}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again",
                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


class Api:
    """Routes declared with their input and output models: one source for validation, auth and OpenAPI."""

    def __init__(self, title: str, version: str = "1.0.0", description: str = ""):
        self.title, self.version, self.description = title, version, description
        self.endpoints: list[Endpoint] = []

    def route(self, method: str, path: str, *, summary: str = "", body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, response: Any = None, status: int = 200,
              roles: set[Role] | None = None, errors: dict[int, str] | None = None, media: str = JSON):
        """`media`: the content type of a successful answer (JSON unless the handler returns, say, a page)."""
        def decorate(fn):
            self.endpoints.append(Endpoint(method, path, fn, summary or (fn.__doc__ or "").strip().split("\n")[0],
                                           body, query, response, status, roles, errors or {}, media))
            return fn
        return decorate

    def _wrap(self, ep: Endpoint):
        async def handler(request: web.Request) -> web.StreamResponse:
            kwargs = {}
            if ep.roles:
                kwargs["claims"] = await request.app[VERIFIER].require(request.headers.get("Authorization"), ep.roles)
            if ep.body is not None:
                kwargs["body"] = await read_body(request, ep.body)
            if ep.query is not None:
                kwargs["query"] = read_query(request, ep.query)
            return respond(await ep.handler(request, **kwargs), ep.status)
        return handler

    def install(self, app: web.Application) -> None:
        for ep in self.endpoints:
            app.router.add_route(ep.method, ep.path, self._wrap(ep))
        document = self.openapi()

        async def openapi(_: web.Request) -> web.Response:
            return web.json_response(document)

        app.router.add_get("/openapi.json", openapi)

    def openapi(self) -> dict:
        """The OpenAPI 3.1 document of the routes: every parameter and body with the constraints the models
        enforce, and every answer the plumbing can give besides the route's own (400, 415, 422, 401, 403, 503)."""
        schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
        paths: dict[str, dict] = {}

        def schema_of(annotation: Any, mode: str) -> dict:
            schema = TypeAdapter(annotation).json_schema(mode=mode, ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            return schema

        def ref(annotation: Any, mode: str) -> dict:
            schema = schema_of(annotation, mode)
            if "title" in schema and schema.get("type") == "object":
                schemas[schema["title"]] = schema
                return {"$ref": f"#/components/schemas/{schema['title']}"}
            return schema

        def error(description: str, headers: dict | None = None) -> dict:
            answer = {"description": description,
                      "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
            return answer | ({"headers": headers} if headers else {})

        for ep in self.endpoints:
            responses: dict[str, Any] = {}
            op: dict[str, Any] = {"summary": ep.summary, "responses": responses}
            params = [{"name": name, "in": "path", "required": True, "schema": schema}
                      for name, schema in _path_params(ep.path)]
            if ep.query is not None:
                query = schema_of(ep.query, "validation")
                params += [{"name": name, "in": "query", "required": name in query.get("required", ()),
                            "schema": field} for name, field in query["properties"].items()]
                responses["422"] = error("Invalid query parameters, with a message per parameter")
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(ep.body, "validation")}}}
                responses["400"] = error("The body is not valid JSON")
                responses["415"] = error("The body is not sent as application/json")
                responses["422"] = error("Invalid input, with a message per field")
            ok: dict[str, Any] = {"description": "OK"}
            if ep.status != 204:
                schema = {} if ep.response is None else ref(ep.response, "serialization")
                ok["content"] = {ep.media: {"schema": schema}}
            responses[str(ep.status)] = ok
            if ep.roles:
                op["security"] = [{"bearer": []}]
                responses["401"] = error("No or invalid token", {"WWW-Authenticate": {"schema": {"type": "string"}}})
                responses["403"] = error(f"Needs role {' or '.join(sorted(ep.roles))}")
            for code, text in ep.errors.items():
                responses[str(code)] = error(text, RETRY_AFTER if code in (429, 503) else None)
            responses.setdefault("503", error("A store or broker it needs is unavailable: try again later",
                                              RETRY_AFTER))
            paths.setdefault(_openapi_path(ep.path), {})[ep.method.lower()] = op
        return {"openapi": "3.1.0", "info": {"title": self.title, "version": self.version,
                                             "description": self.description},
                "paths": paths, "components": {"schemas": schemas, "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}}}


# A path parameter as aiohttp writes it, {name} or {name:regex} (a regex may hold one level of braces, {1,200}).
_PATH_PARAM = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})+))?\}")


def _path_params(path: str) -> list[tuple[str, dict]]:
    """Each parameter's name and schema: any text, or what its regex matches."""
    return [(m[1], {"type": "string", **({"pattern": f"^{m[2]}$"} if m[2] else {})})
            for m in _PATH_PARAM.finditer(path)]


def _openapi_path(path: str) -> str:
    return _PATH_PARAM.sub(lambda m: f"{{{m[1]}}}", path)


ReadyCheck = Callable[[], Awaitable[Any]]


def allow_browsers(app: web.Application, origins: list[str]) -> None:
    """Let pages of the listed sites call every route from the browser (CORS): a municipality's page embeds the
    comment or registration form. Call it once all routes are added."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_headers=("Content-Type", "Authorization", "Idempotency-Key", "X-Request-Id"),
        expose_headers=("X-Request-Id", "Retry-After", "Location"), max_age=3600)
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        cors.add(route)


def service_app(service: str, verifier: Verifier, ready_checks: dict[str, ReadyCheck], *,
                metrics_token: str | None = None, metrics_open: bool = False,
                tracer: Tracer = tracing.OFF) -> web.Application:
    """The base every service's app factory builds on: middlewares and the ops routes. /metrics answers those who
    send metrics_token as a bearer token; without a token, everyone if metrics_open, else nobody (404)."""
    app = web.Application(middlewares=[request_context], client_max_size=256 * 1024)
    app[SERVICE] = service
    app[VERIFIER] = verifier
    app[READY_CHECKS] = ready_checks
    app[METRICS_TOKEN] = metrics_token or None
    app[METRICS_OPEN] = metrics_open
    app[TRACER] = tracer
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": request.app[SERVICE]})


async def _readyz(request: web.Request) -> web.Response:
    results, ready = {}, True
    for name, check in request.app[READY_CHECKS].items():
        try:
            await asyncio.wait_for(check(), timeout=2)
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports, it does not raise
            results[name] = f"unavailable: {exc.__class__.__name__}"
            ready = False
    return web.json_response({"status": "ready" if ready else "not ready", "checks": results},
                             status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[METRICS_TOKEN]
    if token is None and not request.app[METRICS_OPEN]:
        raise ApiError(404, "Metrikkane er avslegne: set METRICS_TOKEN for å hente dei.")
    if token is not None and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                                     f"Bearer {token}".encode()):
        raise ApiError(401, "Metrikkane krev METRICS_TOKEN som Bearer-token i Authorization-headeren.",
                       headers={"WWW-Authenticate": "Bearer"})
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
