"""Bearer-token auth for admin routes: HS256 with the configured secret, or keys from a JWKS URL."""

import asyncio
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

from .settings import Settings


class Role(StrEnum):
    admin = "admin"
    moderator = "moderator"


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def issue_token(settings: Settings, role: Role, subject: str = "local-admin", hours: int = 12) -> str:
    now = datetime.now(UTC)
    claims = {"sub": subject, "role": role.value, "iat": now, "exp": now + timedelta(hours=hours)}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


class Verifier:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    async def claims(self, authorization: str | None) -> dict:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError(401, "Manglar innlogging: send ein Bearer-token i Authorization-headeren.")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") == "HS256":
                return jwt.decode(token, self.settings.jwt_secret.get_secret_value(), algorithms=["HS256"],
                                  options={"require": ["exp", "role"]})
            if self.jwks is None:
                raise jwt.InvalidTokenError(f"algorithm {header.get('alg')} is not accepted")
            # PyJWKClient fetches (and caches) over blocking HTTP: keep it off the event loop.
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
            return jwt.decode(token, key.key, algorithms=["RS256", "ES256"], options={"require": ["exp", "role"]})
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"Ugyldig token: {exc}") from exc

    async def require(self, authorization: str | None, roles: set[Role]) -> dict:
        claims = await self.claims(authorization)
        if claims.get("role") not in roles:
            raise AuthError(403, "Du har ikkje tilgang til dette.")
        return claims
