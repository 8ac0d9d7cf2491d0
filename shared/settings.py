"""Configuration from the environment (12-factor), one model for every service, and the keys derived from its
secret."""

import os
import secrets
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where dev mode (`make run`) keeps the secret it made for this checkout, beside the dev store's data.
DEV_SECRET_FILE = Path(__file__).resolve().parent.parent / ".data" / "jwt-secret"
MIN_SECRET_BYTES = 32
# Secrets that were ever published as defaults (in this code or in docker-compose.yml): refused outside dev mode.
KNOWN_SECRETS = frozenset({"dev-secret-change-me-in-production-32b", "compose-demo-secret-change-me-32-bytes"})
HOW_TO_SET = ("Set JWT_SECRET to a random value of at least 32 bytes, e.g. "
              "JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), the same for every "
              "service; for local development only, set DEV_MODE=true instead (`make run` does).")


class SettingsError(ValueError):
    """The configuration cannot be used as it is; the message says what to set."""


class KeyPurpose(StrEnum):
    """What a key derived from JWT_SECRET signs. Each purpose has its own key, so that a token made for one purpose
    never passes for another (an edit token as an admin token, say). Never rename a value: it is the HKDF label,
    and renaming it invalidates every token already handed out for that purpose."""

    bearer = "auth.bearer"  # admin and moderator bearer tokens
    comment_edit = "comments.edit"
    comment_unsubscribe = "comments.unsubscribe"
    comment_erase = "comments.erase"
    unsubscribe = "notifications.unsubscribe"
    # Staff pages (shared.staff): the mailed sign-in link and the session cookie, per service.
    registration_staff_link = "registration.staff_link"
    registration_staff_session = "registration.staff_session"
    comments_staff_link = "comments.staff_link"
    comments_staff_session = "comments.staff_session"


class SmtpSecurity(StrEnum):
    plain = "plain"
    starttls = "starttls"
    tls = "tls"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mongo_url: str = "mongodb://127.0.0.1:27017"
    # Each service owns the database f"{db_prefix}{service}"; tests isolate themselves with their own prefix.
    db_prefix: str = "moteplass_"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = "moteplass.events"
    # Queue names are f"{queue_prefix}{service}"; tests isolate themselves with their own prefix.
    queue_prefix: str = ""
    max_attempts: int = Field(default=5, ge=1, description="Deliveries before a message is parked in <queue>.dead")
    retry_delays_ms: list[int] = Field(default=[1000, 5000, 30000, 120000])

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.plain
    # A PEM file of CA certificates trusted for the SMTP server besides the system's (e.g. a company's own CA);
    # the server's certificate is always verified.
    smtp_ca_file: str | None = None
    smtp_timeout_s: float = 10.0
    # Whether the mail server takes addresses whose local part is not ASCII (SMTPUTF8, RFC 6531): the dev sink
    # and Mailpit do. When false, such addresses are refused where they are given (422), not parked later.
    smtp_utf8: bool = True
    mail_from: str = "Møteplass <moteplass@example.no>"

    host: str = "127.0.0.1"
    registration_port: int = 8081
    comments_port: int = 8082
    notifications_port: int = 8083
    public_base_url: str = "http://127.0.0.1:8081"
    # Where the comments service is reached from a mail or a page (the comment, reply-mail unsubscribe, erasure,
    # moderation and sign-in links; embed.js).
    comments_public_url: str = "http://127.0.0.1:8082"
    # Where the notifications service is reached from a mail (one-click unsubscribe links).
    notifications_public_url: str = "http://127.0.0.1:8083"
    reminder_hours_before: float = Field(default=24, gt=0, description="When the reminder mail goes out")

    # Sites whose pages may call the services from the browser (CORS), e.g. ["https://www.baerum.kommune.no"].
    cors_origins: list[str] = Field(default_factory=list)

    # Staff who may sign in to every service's staff pages (door page, moderation) by a mailed link, as admins.
    admins: list[str] = Field(default_factory=list)
    staff_link_minutes: float = Field(default=15, gt=0, description="Life of a mailed sign-in link (used once)")
    staff_session_minutes: float = Field(default=120, gt=0, description="Life of a staff session cookie")

    # Local development (`make run` sets it): without JWT_SECRET the services use a random secret kept in
    # dev_secret_file (made on first use), and /metrics needs no token. Never set it in a deployment.
    dev_mode: bool = False
    dev_secret_file: Path = DEV_SECRET_FILE
    # The one secret every service shares; the keys that sign tokens are derived from it per purpose (`key`).
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    # A bearer token Prometheus must send for /metrics; unset, /metrics is off (open in dev mode).
    metrics_token: SecretStr | None = None
    # Reverse proxies in front of the services that append the client's address to X-Forwarded-For: the client
    # is the entry this far from the right. 0: X-Forwarded-For is ignored (the services are reached directly).
    trusted_proxies: int = Field(default=0, ge=0)

    # How often the outbox relay sweeps for events that were stored but not yet published.
    relay_interval_s: float = 2.0
    log_level: str = "INFO"

    def db_name(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    def queue_name(self, service: str) -> str:
        return f"{self.queue_prefix}{service}"

    def secret(self) -> bytes:
        """JWT_SECRET; in dev mode without one, this checkout's own. Raises SettingsError outside dev mode when the
        secret is missing, short or one that was ever published."""
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            if self.dev_mode:
                return dev_secret(self.dev_secret_file).encode()
            raise SettingsError(f"JWT_SECRET is not set. {HOW_TO_SET}")
        value = self.jwt_secret.get_secret_value()
        if not self.dev_mode and value in KNOWN_SECRETS:
            raise SettingsError(f"JWT_SECRET is a published default, so anyone could sign tokens. {HOW_TO_SET}")
        if not self.dev_mode and len(value.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes. {HOW_TO_SET}")
        return value.encode()

    def key(self, purpose: KeyPurpose) -> bytes:
        """The signing key for one purpose, derived from the secret (HKDF-SHA256, the purpose as its label)."""
        return derive_key(self.secret(), purpose)


@cache
def derive_key(secret: bytes, purpose: KeyPurpose) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"moteplass/{purpose.value}".encode()).derive(secret)


@cache
def dev_secret(path: Path) -> str:
    """The random secret of a local install, made on first use and readable only by its owner."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.touch(mode=0o600)
        draft.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        try:  # a hard link never replaces: of services starting together, the first one's secret holds
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text(encoding="utf-8").strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def local_settings() -> Settings:
    """The settings of a tool run beside a local install (`moteplass token`): JWT_SECRET if set, else the secret
    that dev mode (`make run`) made for this checkout."""
    settings = get_settings()
    if settings.jwt_secret is not None or settings.dev_mode:
        return settings
    if not settings.dev_secret_file.exists():
        raise SettingsError(f"JWT_SECRET is not set, and there is no local secret at {settings.dev_secret_file} "
                            "(`make run` makes one). Set JWT_SECRET to the secret the services use.")
    return settings.model_copy(update={"jwt_secret": SecretStr(dev_secret(settings.dev_secret_file))})
