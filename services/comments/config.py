"""The comments service's own knobs (env prefix COMMENTS_), beside the shared Settings."""

from pydantic import EmailStr, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommentsConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMENTS_", env_file=".env", extra="ignore")

    max_depth: int = Field(default=2, ge=1, description="Deepest reply level (top-level comments are level 0)")
    nested_limit: int = Field(default=5, ge=0, description="Replies shown under each comment in a page")
    page_size: int = Field(default=20, ge=1, le=100)
    posts_per_minute: int = Field(default=2, ge=1, description="New comments per client IP per minute")
    new_threads_per_hour: int = Field(default=5, ge=1, description="New threads per client IP per hour")
    max_links: int = Field(default=2, ge=0, description="More links than this holds a comment for moderation")
    edit_minutes: int = Field(default=15, ge=1)
    ip_retention_days: int = Field(default=30, ge=1,
                                   description="A comment's client IP is kept this long (for abuse cases), then dropped")
    auto_approve_known: bool = Field(default=False, description="Publish at once for an email already approved")
    moderators: list[EmailStr] = Field(default_factory=list, description="Who hears about pending comments")
    # Pages are cached in-process and dropped on this instance's writes; other instances see them within the TTL.
    cache_ttl_s: float = Field(default=2.0, ge=0)
