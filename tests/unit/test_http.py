"""The HTTP plumbing every service shares: typed routes, JSON errors with per-field details, auth, OpenAPI."""

import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, EmailStr, Field

from shared.auth import Role, Verifier, issue_token
from shared.http import MAX_JSON_DEPTH, Api, ApiError, Reply, allow_browsers, nested_deeper, service_app
from shared.settings import Settings

SETTINGS = Settings(jwt_secret="unit-test-secret-long-enough-for-hs256")
api = Api("test")


class Person(BaseModel):
    name: str
    email: EmailStr
    consent: bool


@api.route("POST", "/people", body=Person, response=Person, status=201, errors={409: "Already there"})
async def add_person(request: web.Request, body: Person) -> Person | Reply:
    if body.name == "taken":
        raise ApiError(409, "Finst frå før.")
    return body


class Listing(BaseModel):
    token: str = Field(min_length=1)
    limit: int = Field(10, ge=1, le=100)


@api.route("GET", "/people/{group:[a-z]{1,20}}", query=Listing, media="text/csv")
async def list_people(request: web.Request, query: Listing) -> web.Response:
    return web.Response(text="name\n", content_type="text/csv")


@api.route("GET", "/secret", roles={Role.admin})
async def secret(request: web.Request, claims: dict) -> dict:
    return {"sub": claims["sub"]}


def client() -> TestClient:
    app = service_app("test", Verifier(SETTINGS), {})
    api.install(app)
    return TestClient(TestServer(app))


async def test_valid_body_is_parsed_and_answered_with_the_route_status():
    async with client() as c:
        resp = await c.post("/people", json={"name": "Kari", "email": "kari@example.no", "consent": True})
        assert resp.status == 201
        assert await resp.json() == {"name": "Kari", "email": "kari@example.no", "consent": True}
        assert resp.headers["X-Request-Id"]


async def test_invalid_fields_give_422_with_a_message_per_field():
    async with client() as c:
        resp = await c.post("/people", json={"name": {"$ne": None}, "email": "nope"})
        assert resp.status == 422
        error = (await resp.json())["error"]
        by_field = {d["field"]: d["message"] for d in error["details"]}
        assert set(by_field) == {"name", "email", "consent"}
        assert by_field["consent"] == "Feltet er obligatorisk."
        assert by_field["name"] == "Feltet må vere tekst."


async def test_non_json_and_non_object_bodies_are_refused_readably():
    async with client() as c:
        resp = await c.post("/people", data=b"{not json", headers={"Content-Type": "application/json"})
        assert resp.status == 400
        assert "JSON" in (await resp.json())["error"]["message"]
        resp = await c.post("/people", json=[1, 2])
        assert resp.status == 422


async def test_domain_refusals_and_unknown_routes_are_json():
    async with client() as c:
        resp = await c.post("/people", json={"name": "taken", "email": "t@example.no", "consent": True})
        assert resp.status == 409
        assert (await resp.json())["error"]["message"] == "Finst frå før."
        resp = await c.get("/nowhere")
        assert resp.status == 404
        assert (await resp.json())["error"]["status"] == 404


async def test_role_protected_route_wants_a_token_of_that_role():
    async with client() as c:
        assert (await c.get("/secret")).status == 401
        moderator = issue_token(SETTINGS, Role.moderator)
        assert (await c.get("/secret", headers={"Authorization": f"Bearer {moderator}"})).status == 403
        admin = issue_token(SETTINGS, Role.admin, subject="ola")
        resp = await c.get("/secret", headers={"Authorization": f"Bearer {admin}"})
        assert resp.status == 200 and (await resp.json()) == {"sub": "ola"}


async def test_openapi_document_is_generated_from_the_route_models():
    async with client() as c:
        doc = await (await c.get("/openapi.json")).json()
    post = doc["paths"]["/people"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Person"}
    # Besides the route's own answers, what the plumbing gives: invalid JSON, another content type, invalid
    # fields, a store or broker down (with Retry-After).
    assert set(post["responses"]) == {"201", "400", "409", "415", "422", "503"}
    assert "Retry-After" in post["responses"]["503"]["headers"]
    assert set(doc["components"]["schemas"]["Person"]["required"]) == {"name", "email", "consent"}
    secret = doc["paths"]["/secret"]["get"]
    assert secret["security"] == [{"bearer": []}] and {"401", "403"} <= set(secret["responses"])


async def test_openapi_states_query_and_path_parameters_as_exactly_as_they_are_checked():
    async with client() as c:
        doc = await (await c.get("/openapi.json")).json()
    listing = doc["paths"]["/people/{group}"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["group"]["schema"] == {"type": "string", "pattern": "^[a-z]{1,20}$"}
    assert params["limit"]["schema"]["minimum"] == 1 and params["limit"]["schema"]["maximum"] == 100
    assert not params["limit"]["required"] and params["token"]["required"]
    assert {"200", "422", "503"} <= set(listing["responses"])
    assert listing["responses"]["200"]["content"] == {"text/csv": {"schema": {}}}
    async with client() as c:
        assert (await c.get("/people/kari")).status == 422  # no token
        assert (await c.get("/people/kari", params={"token": "t", "limit": "0"})).status == 422
        assert (await c.get("/people/Kari", params={"token": "t"})).status == 404
        assert (await c.get("/people/kari", params={"token": "t"})).status == 200


async def test_listed_sites_may_call_from_the_browser_and_others_may_not():
    app = service_app("test", Verifier(SETTINGS), {})
    api.install(app)
    allow_browsers(app, ["https://www.baerum.kommune.no"])
    async with TestClient(TestServer(app)) as c:
        preflight = await c.options("/people", headers={
            "Origin": "https://www.baerum.kommune.no", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type, Idempotency-Key"})
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://www.baerum.kommune.no"
        assert "IDEMPOTENCY-KEY" in preflight.headers["Access-Control-Allow-Headers"].upper()
        resp = await c.post("/people", json={"name": "Kari", "email": "kari@example.no", "consent": True},
                            headers={"Origin": "https://www.baerum.kommune.no"})
        assert resp.status == 201
        assert resp.headers["Access-Control-Allow-Origin"] == "https://www.baerum.kommune.no"
        assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]
        foreign = await c.options("/people", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in foreign.headers


def test_json_nesting_is_measured_in_objects_and_arrays():
    assert not nested_deeper("text", 0) and nested_deeper({}, 0)
    assert not nested_deeper({"a": 1, "b": [1, 2]}, 2) and nested_deeper({"a": {"b": [1]}}, 2)
    at_limit = json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert not nested_deeper(at_limit, MAX_JSON_DEPTH) and nested_deeper([at_limit], MAX_JSON_DEPTH)


async def test_a_body_at_the_nesting_limit_is_read_and_one_level_deeper_is_400():
    async with client() as c:
        for depth, status in ((MAX_JSON_DEPTH, 422), (MAX_JSON_DEPTH + 1, 400)):
            body = '{"name": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
            resp = await c.post("/people", data=body, headers={"Content-Type": "application/json"})
            assert resp.status == status, await resp.text()
