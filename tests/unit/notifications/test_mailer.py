"""SMTP settings reach each pooled connection: security mode, credentials, timeout."""

import pytest

from services.notifications.mailer import POOL_SIZE, Mailer
from shared.settings import Settings, SmtpSecurity


@pytest.mark.parametrize(("security", "use_tls", "start_tls"), [
    (SmtpSecurity.plain, False, False), (SmtpSecurity.starttls, False, True), (SmtpSecurity.tls, True, False),
])
def test_each_connection_uses_the_configured_security_credentials_and_timeout(security, use_tls, start_tls):
    settings = Settings(smtp_host="smtp.example.no", smtp_port=587, smtp_security=security, smtp_user="moteplass",
                        smtp_password="hemmeleg", smtp_timeout_s=4)
    mailer = Mailer(settings)
    clients = [mailer.idle.get_nowait() for _ in range(POOL_SIZE)]
    assert mailer.idle.empty()
    for client in clients:
        assert (client.hostname, client.port, client.timeout) == ("smtp.example.no", 587, 4)
        assert (client.use_tls, client._start_tls_on_connect) == (use_tls, start_tls)
        assert (client._login_username, client._login_password) == ("moteplass", "hemmeleg")


def test_without_a_user_no_login_is_attempted():
    client = Mailer(Settings()).idle.get_nowait()
    assert client._login_username is None and client._login_password is None
