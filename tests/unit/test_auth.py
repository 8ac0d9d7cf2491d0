from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import AuthError, Role, Verifier, issue_token
from shared.settings import Settings

SETTINGS = Settings(jwt_secret="unit-test-secret-long-enough-for-hs256")


async def test_issued_admin_token_passes_for_admin_routes():
    claims = await Verifier(SETTINGS).require(f"Bearer {issue_token(SETTINGS, Role.admin)}", {Role.admin})
    assert claims["role"] == "admin"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer not-a-jwt"])
async def test_missing_or_malformed_token_is_401(header):
    with pytest.raises(AuthError) as err:
        await Verifier(SETTINGS).require(header, {Role.admin})
    assert err.value.status == 401


async def test_wrong_role_is_403():
    with pytest.raises(AuthError) as err:
        await Verifier(SETTINGS).require(f"Bearer {issue_token(SETTINGS, Role.moderator)}", {Role.admin})
    assert err.value.status == 403


async def test_expired_or_foreign_tokens_are_401():
    expired = jwt.encode({"role": "admin", "exp": datetime.now(UTC) - timedelta(minutes=1)},
                         SETTINGS.jwt_secret.get_secret_value(), algorithm="HS256")
    foreign = jwt.encode({"role": "admin", "exp": datetime.now(UTC) + timedelta(minutes=5)},
                         "another-secret-entirely-long-enough", algorithm="HS256")
    for token in (expired, foreign):
        with pytest.raises(AuthError) as err:
            await Verifier(SETTINGS).require(f"Bearer {token}", {Role.admin})
        assert err.value.status == 401
