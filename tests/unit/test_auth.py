from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import AuthError, Role, Verifier, issue_token
from shared.settings import KeyPurpose, Settings

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
                         SETTINGS.key(KeyPurpose.bearer), algorithm="HS256")
    foreign = jwt.encode({"role": "admin", "exp": datetime.now(UTC) + timedelta(minutes=5)},
                         "another-secret-entirely-long-enough", algorithm="HS256")
    for token in (expired, foreign):
        with pytest.raises(AuthError) as err:
            await Verifier(SETTINGS).require(f"Bearer {token}", {Role.admin})
        assert err.value.status == 401


@pytest.mark.parametrize("claims", [{"role": ["admin"]}, {"role": {"admin": True}}, {"role": 1}, {"role": None},
                                    {"role": "admin", "sub": ["x"]}, {"role": "admin", "sub": 5}])
async def test_a_signed_token_whose_claims_have_the_wrong_type_is_401(claims):
    token = jwt.encode({**claims, "exp": datetime.now(UTC) + timedelta(minutes=5)},
                       SETTINGS.key(KeyPurpose.bearer), algorithm="HS256")
    with pytest.raises(AuthError) as err:
        await Verifier(SETTINGS).require(f"Bearer {token}", {Role.admin})
    assert err.value.status == 401


async def test_a_token_signed_with_the_secret_itself_or_another_purpose_s_key_is_401():
    for key in (SETTINGS.secret(), SETTINGS.key(KeyPurpose.comment_edit), SETTINGS.key(KeyPurpose.unsubscribe)):
        token = jwt.encode({"role": "admin", "exp": datetime.now(UTC) + timedelta(minutes=5)}, key, algorithm="HS256")
        with pytest.raises(AuthError) as err:
            await Verifier(SETTINGS).require(f"Bearer {token}", {Role.admin})
        assert err.value.status == 401
