"""What the sign-in messages of the services with staff pages share (each service publishes its own type, in its
own module): a link mailed to a listed address that signs its holder in, once, for a short while."""

from typing import Literal

from pydantic import AwareDatetime, EmailStr, Field

from .common import Language
from .envelope import SECRET_LINK, URI, Payload, personal


class SignInLink(Payload):
    email: personal(EmailStr, "The listed staff address the link is mailed to")
    role: Literal["admin", "moderator"] = Field(description="What the link signs its holder in as. Open: mail the "
                                                            "link whatever the role.")
    language: Language = Language.nn
    sign_in_url: personal(str, SECRET_LINK + " (signs its holder in once)", **URI)
    expires_at: AwareDatetime = Field(description="The link works until then, and only once")
