"""The registration service's own knobs (env prefix REGISTRATION_), beside the shared Settings."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RegistrationConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRATION_", env_file=".env", extra="ignore")

    confirmation_valid_hours: float = Field(default=24.0, gt=0, description="Life of a double opt-in link")
    # Flows in progress are left to their own request for this long before the reconciler finishes them.
    reconcile_grace_s: float = Field(default=10.0, ge=0)
    # A place held in an event by a registration id that has no stored registration this long after the id was
    # made belongs to a request that died between taking the place and storing the registration: given back.
    orphan_after_s: float = Field(default=60.0, gt=0)
    # How often to look for møteplassar whose retention is over (their personal data is then erased).
    purge_interval_s: float = Field(default=3600.0, gt=0)
    # Public POSTs (registering, confirming, inviting) per client IP per minute, across instances. Generous: a whole
    # town hall registers from behind one NAT address.
    posts_per_minute: int = Field(default=600, ge=1)
    # How long a response is kept for replay under its Idempotency-Key.
    idempotency_hours: float = Field(default=24.0, gt=0)
