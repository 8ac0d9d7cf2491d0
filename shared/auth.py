"""Bearer-token auth for admin routes: HS256 with the key derived for bearer tokens, or keys from a JWKS URL."""

import asyncio
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from .settings import KeyPurpose, Settings


class Role(StrEnum):
    admin = "admin"
    moderator = "moderator"


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Claims(BaseModel):
    """What a route may rely on in a verified token: a token whose claims have other types is refused (401)."""

    model_config = ConfigDict(extra="allow")

    role: StrictStr  # an unknown role is a 403 in `require`; a role that is no string is a bad token
    sub: StrictStr | None = None


def actor(claims: dict) -> str | None:
    """Who does an admin's or moderator's action: the subject of their token, recorded with what it changes."""
    return claims.get("sub")


def issue_token(settings: Settings, role: Role, subject: str = "local-admin", hours: int = 12) -> str:
    now = datetime.now(UTC)
    claims = {"sub": subject, "role": role.value, "iat": now, "exp": now + timedelta(hours=hours)}
    return jwt.encode(claims, settings.key(KeyPurpose.bearer), algorithm="HS256")


class Verifier:
    def __init__(self, settings: Settings):
        self.key = settings.key(KeyPurpose.bearer)  # raises SettingsError when the secret may not be used
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    async def claims(self, authorization: str | None) -> dict:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError(401, "Manglar innlogging: send ein Bearer-token i Authorization-headeren.")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            claims = await self._decode(token)
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"Ugyldig token: {exc}") from exc
        try:
            Claims.model_validate(claims)
        except ValidationError as exc:
            raise AuthError(401, "Ugyldig token: rolla eller andre krav har feil type.") from exc
        return claims

    async def _decode(self, token: str) -> dict:
        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256":
            return jwt.decode(token, self.key, algorithms=["HS256"], options={"require": ["exp", "role"]})
        if self.jwks is None:
            raise jwt.InvalidTokenError(f"algorithm {header.get('alg')} is not accepted")
        # PyJWKClient fetches (and caches) over blocking HTTP: keep it off the event loop.
        key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
        return jwt.decode(token, key.key, algorithms=["RS256", "ES256"], options={"require": ["exp", "role"]})

    async def require(self, authorization: str | None, roles: set[Role]) -> dict:
        claims = await self.claims(authorization)
        if claims["role"] not in roles:
            raise AuthError(403, "Du har ikkje tilgang til dette.")
        return claims
