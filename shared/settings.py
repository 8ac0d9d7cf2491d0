"""Configuration from the environment (12-factor), one model for every service."""

from enum import StrEnum
from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    # Where the notifications service is reached from a mail (one-click unsubscribe links).
    notifications_public_url: str = "http://127.0.0.1:8083"
    reminder_hours_before: float = Field(default=24, gt=0, description="When the reminder mail goes out")

    # Sites whose pages may call the services from the browser (CORS), e.g. ["https://www.baerum.kommune.no"].
    cors_origins: list[str] = Field(default_factory=list)

    jwt_secret: SecretStr = SecretStr("dev-secret-change-me-in-production-32b")
    jwt_jwks_url: str | None = None

    # How often the outbox relay sweeps for events that were stored but not yet published.
    relay_interval_s: float = 2.0
    log_level: str = "INFO"

    def db_name(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    def queue_name(self, service: str) -> str:
        return f"{self.queue_prefix}{service}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
