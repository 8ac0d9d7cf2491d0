"""The shared secret and the keys derived from it: refused when missing or public outside dev mode, made per
checkout in dev mode, one key per purpose; and whose address X-Forwarded-For may name."""

import hashlib
import hmac
import itertools
import stat

import pytest
from aiohttp.test_utils import make_mocked_request
from click.testing import CliRunner

from moteplass.cli import main
from shared import settings as settings_module
from shared.auth import Role, Verifier
from shared.ratelimit import client_ip
from shared.settings import KNOWN_SECRETS, KeyPurpose, Settings, SettingsError, derive_key

SECRET = "unit-test-secret-long-enough-for-hs256"


def rfc5869(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 with no salt, written out from RFC 5869 (section 2.2 and 2.3), to check the library's use."""
    prk = hmac.new(b"\0" * 32, secret, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in itertools.count(1):
        if len(okm) >= length:
            return okm[:length]
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block


def test_each_purpose_has_its_own_key_derived_by_hkdf_from_the_secret():
    settings = Settings(jwt_secret=SECRET)
    keys = {purpose: settings.key(purpose) for purpose in KeyPurpose}
    assert len(set(keys.values())) == len(KeyPurpose)  # no two purposes share a key
    for purpose, key in keys.items():
        assert key == rfc5869(SECRET.encode(), f"moteplass/{purpose.value}".encode())
        assert len(key) == 32 and SECRET.encode() not in key
    other = Settings(jwt_secret=SECRET + "!")
    assert all(other.key(purpose) != key for purpose, key in keys.items())  # and each depends on the secret
    assert derive_key(SECRET.encode(), KeyPurpose.bearer) == keys[KeyPurpose.bearer]  # the same every time


@pytest.mark.parametrize("secret, reason", [
    (None, "is not set"), ("", "is not set"), (sorted(KNOWN_SECRETS)[0], "published default"),
    ("short-secret", "shorter than 32 bytes")])
def test_outside_dev_mode_a_missing_public_or_short_secret_is_refused_saying_how_to_set_one(secret, reason):
    settings = Settings(jwt_secret=secret)
    with pytest.raises(SettingsError, match=reason) as refused:
        settings.key(KeyPurpose.bearer)
    assert "JWT_SECRET=" in str(refused.value) and "DEV_MODE=true" in str(refused.value)
    with pytest.raises(SettingsError):
        Verifier(settings)  # which every service builds first


def test_dev_mode_makes_one_private_secret_per_checkout_and_keeps_it(tmp_path):
    path = tmp_path / ".data" / "jwt-secret"
    first = Settings(dev_mode=True, dev_secret_file=path)
    key = first.key(KeyPurpose.bearer)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    settings_module.dev_secret.cache_clear()  # as a new process would
    assert Settings(dev_mode=True, dev_secret_file=path).key(KeyPurpose.bearer) == key
    other = Settings(dev_mode=True, dev_secret_file=tmp_path / "elsewhere" / "jwt-secret")
    assert other.key(KeyPurpose.bearer) != key  # another checkout, another secret
    assert Settings(dev_mode=True, jwt_secret=SECRET).secret() == SECRET.encode()  # JWT_SECRET still wins


async def test_moteplass_token_signs_with_the_local_install_s_secret(tmp_path, monkeypatch):
    path = tmp_path / "jwt-secret"
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("DEV_MODE", raising=False)
    monkeypatch.setenv("DEV_SECRET_FILE", str(path))
    settings_module.get_settings.cache_clear()
    try:
        missing = CliRunner().invoke(main, ["token"])
        assert missing.exit_code != 0 and "JWT_SECRET is not set" in missing.output and "make run" in missing.output
        verifier = Verifier(Settings(dev_mode=True, dev_secret_file=path))  # a service that `make run` started
        issued = CliRunner().invoke(main, ["token", "--role", "moderator"])
        assert issued.exit_code == 0, issued.output
        claims = await verifier.require(f"Bearer {issued.output.strip()}", {Role.moderator})
        assert claims["role"] == "moderator"
    finally:
        settings_module.get_settings.cache_clear()


def request(remote: str, *forwarded: str):
    headers = [("X-Forwarded-For", value) for value in forwarded]
    return make_mocked_request("POST", "/", headers=headers, transport=FakeTransport(remote))


class FakeTransport:
    def __init__(self, remote: str):
        self.remote = remote

    def get_extra_info(self, name: str, default=None):
        return (self.remote, 40000) if name == "peername" else default


@pytest.mark.parametrize("proxies, forwarded, client", [
    (0, ["1.1.1.1"], "10.0.0.1"),  # nobody trusted: the header is the client's word
    (1, ["6.6.6.6, 1.1.1.1"], "1.1.1.1"),  # what our proxy appended, not what the client wrote before it
    (1, ["6.6.6.6", "1.1.1.1"], "1.1.1.1"),  # header lines count as one list
    (2, ["6.6.6.6, 1.1.1.1, 10.0.0.2"], "1.1.1.1"),
    (2, ["1.1.1.1"], "10.0.0.1"),  # fewer entries than proxies: the request did not come through them
    (1, [], "10.0.0.1"),
    (1, ["6.6.6.6, not-an-address"], "10.0.0.1"),
    (1, ["2001:db8::1"], "2001:db8::1"),
])
def test_forwarded_addresses_are_counted_from_the_right(proxies, forwarded, client):
    assert client_ip(request("10.0.0.1", *forwarded), proxies) == client
