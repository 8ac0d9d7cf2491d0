"""Admin tokens from an external identity provider: keys fetched from its JWKS URL."""

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import AuthError, Role, Verifier
from shared.settings import Settings

SECRET = "unit-test-secret-long-enough-for-hs256"  # the services' own links need one, JWKS or not


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def identity_provider():
    key = rsa_key()
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    app = web.Application()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response({"keys": [{**public, "kid": "idp-1", "use": "sig", "alg": "RS256"}]})

    app.router.add_get("/.well-known/jwks.json", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield key, str(server.make_url("/.well-known/jwks.json"))
    await server.close()


def token(key, role: str, kid: str = "idp-1") -> str:
    claims = {"sub": "kari@difi.no", "role": role, "exp": datetime.now(UTC) + timedelta(minutes=5)}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_a_token_signed_by_the_identity_provider_is_accepted_beside_the_shared_secret(identity_provider):
    key, url = identity_provider
    verifier = Verifier(Settings(jwt_jwks_url=url, jwt_secret=SECRET))
    claims = await verifier.require(f"Bearer {token(key, 'moderator')}", {Role.moderator, Role.admin})
    assert claims["sub"] == "kari@difi.no"
    with pytest.raises(AuthError) as err:
        await verifier.require(f"Bearer {token(key, 'moderator')}", {Role.admin})
    assert err.value.status == 403


async def test_a_token_signed_by_another_key_is_refused(identity_provider):
    _, url = identity_provider
    verifier = Verifier(Settings(jwt_jwks_url=url, jwt_secret=SECRET))
    with pytest.raises(AuthError) as err:
        await verifier.require(f"Bearer {token(rsa_key(), 'admin')}", {Role.admin})
    assert err.value.status == 401


async def test_without_a_jwks_url_only_the_shared_secret_counts(identity_provider):
    key, _ = identity_provider
    with pytest.raises(AuthError) as err:
        await Verifier(Settings(jwt_secret=SECRET)).require(f"Bearer {token(key, 'admin')}", {Role.admin})
    assert err.value.status == 401
