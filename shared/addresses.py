"""Email addresses, one rule for every service: what an address must look like to be accepted, whether the mail
server can take it, and how it is written on the wire (email-validator, IDNA 2008).

An address is kept as people write it (normalised: Unicode NFC, the domain in lower case, a non-ASCII domain as
Unicode). On the wire the domain is IDNA-encoded (`kari@xn--brum-voa.no`), which every mail server takes. A
non-ASCII local part (`ærlig@…`) can only go out to a server that offers SMTPUTF8 (RFC 6531); the setting
`SMTP_UTF8` says whether ours does, and where it does not such addresses are refused when they are given (422),
not parked when the mail is due."""

import functools
from typing import Annotated

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

INVALID = "Skriv ei gyldig e-postadresse, til dømes namn@eksempel.no."
NEEDS_SMTPUTF8 = ("Vi kan ikkje sende e-post til ei adresse med æ, ø, å eller andre slike teikn før @. "
                  "Bruk ei anna e-postadresse.")


@functools.lru_cache(maxsize=4096)
def _parsed(address: str) -> ValidatedEmail:
    # Syntax only: whether the domain takes mail is the mail server's to find out (a DNS lookup per request
    # would make registration depend on the resolver).
    return validate_email(address, check_deliverability=False)


def normalise(value: str) -> str:
    """The address as it is kept; raises a validation error (nn) if it is not one."""
    try:
        return _parsed(value).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError("email", INVALID, {"reason": str(exc)}) from exc


# An address given in a request (RFC 5321's 254 octets at most).
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(normalise),
                  Field(json_schema_extra={"format": "email"})]


def needs_smtputf8(address: str) -> bool:
    """Only a server that offers SMTPUTF8 can take this address (its local part is not ASCII)."""
    return not address.isascii() and _parsed(address).smtputf8


def undeliverable(field: str, address: str, smtp_utf8: bool) -> list[dict]:
    """A field problem (as in a 422's details) if our mail server cannot take this address, else none."""
    if smtp_utf8 or not needs_smtputf8(address):
        return []
    return [{"field": field, "message": NEEDS_SMTPUTF8, "type": "email_smtputf8"}]


def on_the_wire(address: str) -> str:
    """The address for the SMTP envelope and the headers: the domain IDNA-encoded, the local part as it is."""
    if address.isascii():
        return address
    parsed = _parsed(address)
    return f"{parsed.local_part}@{parsed.ascii_domain}"
