"""Mail goes out over STARTTLS and over implicit TLS to real TLS SMTP servers (aiosmtpd, here in the test process),
logging in where the server requires it; a server whose certificate is not trusted gets neither the mail nor the
password, and that is a transient delivery error (the mail waits for the certificate or the setting to be fixed)."""

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from services.notifications.app import create_app
from services.notifications.mailer import DeliveryError, Mailer
from services.notifications.render import Outgoing
from shared.settings import Settings, SmtpSecurity
from tests.conftest import free_port

from .conftest import address, confirmed, eventually

USER, PASSWORD = "moteplass", "hemmeleg-smtp-passord"
# aiosmtpd warns when AUTH is required without its auth_require_tls; the implicit TLS server below must say so.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # the throwaway CA the client is told to trust
    server: ssl.SSLContext  # the server's side: a certificate for 127.0.0.1 issued by that CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    directory = tmp_path_factory.mktemp("smtp-tls")
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_until = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_public = ca_key.public_key()
    ca = (x509.CertificateBuilder().subject_name(_name("Møteplass test CA")).issuer_name(_name("Møteplass test CA"))
          .public_key(ca_public).serial_number(x509.random_serial_number())
          .not_valid_before(valid_from).not_valid_after(valid_until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_public), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(valid_from).not_valid_after(valid_until)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                          x509.DNSName("localhost")]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return Certificates(ca_file, context)


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    login: bytes | None  # who logged in on the connection the mail came over
    tls_version: str | None  # the connection's TLS version when the mail came (None: unencrypted)


class Inbox:
    """The server side: checks the credentials it is given and keeps what arrives and how."""

    def __init__(self):
        self.mails: list[Received] = []
        self.logins: list[bytes] = []  # every login tried, right or wrong

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login)
        right = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        # handled=False: a refusal is answered with aiosmtpd's own 535 (handled=True would leave it unanswered).
        return AuthResult(success=right, handled=False, auth_data=auth_data if right else None)

    async def handle_DATA(self, server, session, envelope) -> str:
        tls = server.transport.get_extra_info("ssl_object")
        self.mails.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                   session.auth_data.login if session.authenticated else None,
                                   tls.version() if tls else None))
        return "250 2.0.0 OK"

    def to(self, recipient: str) -> list[Received]:
        return [mail for mail in self.mails if recipient in mail.recipients]


def _server(security: SmtpSecurity, certificates: Certificates, inbox: Inbox) -> Controller:
    common = {"hostname": "127.0.0.1", "port": free_port(), "authenticator": inbox.authenticate,
              "auth_required": True}
    if security == SmtpSecurity.starttls:
        return Controller(inbox, tls_context=certificates.server, require_starttls=True, auth_require_tls=True,
                          **common)
    # aiosmtpd counts only a STARTTLS upgrade as TLS for auth_require_tls (with implicit TLS it would not offer
    # AUTH at all); this connection is encrypted from its first byte, which the inbox records for every mail.
    return Controller(inbox, ssl_context=certificates.server, auth_require_tls=False, **common)


@pytest.fixture(params=[SmtpSecurity.starttls, SmtpSecurity.tls])
def tls_server(request, certificates):
    """(security mode, port, inbox) of a running TLS SMTP server that requires a login."""
    inbox = Inbox()
    controller = _server(request.param, certificates, inbox)
    controller.start()
    yield request.param, controller.port, inbox
    controller.stop()


def mailer_settings(security: SmtpSecurity, port: int, ca_file: Path | None) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_security=security, smtp_user=USER,
                    smtp_password=PASSWORD, smtp_ca_file=str(ca_file) if ca_file else None, smtp_timeout_s=5)


async def send(settings: Settings, message: Outgoing) -> None:
    mailer = Mailer(settings, pool_size=1)
    try:
        async with mailer.connection() as deliver:
            await deliver(message)
    finally:
        await mailer.close()


def outgoing(to: str) -> Outgoing:
    return Outgoing("moteplass@example.no", [to], f"To: {to}\r\nSubject: Prov\r\n\r\nHei over TLS.\r\n".encode())


async def test_the_mailer_delivers_over_tls_and_logs_in(tls_server, certificates):
    security, port, inbox = tls_server
    to = address()
    await send(mailer_settings(security, port, certificates.ca_file), outgoing(to))

    [mail] = inbox.to(to)
    assert (mail.sender, mail.recipients, mail.login) == ("moteplass@example.no", [to], USER.encode())
    assert mail.tls_version in ("TLSv1.2", "TLSv1.3")
    assert b"Hei over TLS." in mail.data


async def test_a_server_whose_certificate_is_not_trusted_gets_no_mail_and_no_password(tls_server):
    security, port, inbox = tls_server
    to = address()
    with pytest.raises(DeliveryError) as refused:
        await send(mailer_settings(security, port, ca_file=None), outgoing(to))  # only the system's CAs

    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    # The server's certificate or the CA setting is wrong, not the mail: it is retried (and parked after the last
    # attempt, to be replayed), not recorded as failed for good.
    assert not refused.value.permanent
    assert inbox.mails == [] and inbox.logins == []


async def test_a_refused_password_is_retried_not_failed_for_good(tls_server, certificates):
    security, port, inbox = tls_server
    to = address()
    wrong = mailer_settings(security, port, certificates.ca_file).model_copy(
        update={"smtp_password": SecretStr("feil-passord")})
    with pytest.raises(DeliveryError) as refused:
        await send(wrong, outgoing(to))

    assert "535" in str(refused.value) and not refused.value.permanent
    # aiosmtplib tries each mechanism the server offers (PLAIN, then LOGIN) before it gives up.
    assert inbox.mails == [] and inbox.logins and set(inbox.logins) == {USER.encode()}


async def test_the_service_sends_a_registration_mail_over_starttls_with_login(
        settings, certificates, start_service, publish, records):
    inbox = Inbox()
    controller = _server(SmtpSecurity.starttls, certificates, inbox)
    controller.start()
    try:
        over_tls = settings.model_copy(update={
            "smtp_port": controller.port, "smtp_security": SmtpSecurity.starttls, "smtp_user": USER,
            "smtp_password": SecretStr(PASSWORD), "smtp_ca_file": str(certificates.ca_file)})
        await start_service(create_app, "notifications", app_settings=over_tls)
        to = address()
        await publish(confirmed(to))

        [mail] = await eventually(lambda: inbox.to(to))
        assert mail.login == USER.encode() and mail.tls_version is not None
        subject = message_from_bytes(mail.data, policy=policy.default)["Subject"]
        assert subject == "Du er påmeld: Innovasjonsjam i Bærum"
        record = await eventually(lambda: records.find_one({"recipient": to, "status": "sent"}))
        assert record["attempts"] == 1
    finally:
        controller.stop()
