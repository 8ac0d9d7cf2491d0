"""Input field types both services' HTTP models use where a person means something exact: a yes/no is the JSON
`true` or `false` (not "yes", 1 or 0), a count is a JSON number without a fraction (not "10"), a text has
something to read in it (not only spaces), and a moment is an ISO 8601 time with its time zone (not a bare number)
within the range every store and id can hold."""

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field
from pydantic_core import PydanticCustomError

Flag = Annotated[bool, Field(strict=True)]

# Whitespace as the regular expressions of JSON Schema (ECMA-262 \s) know it, so that a text's pattern in the
# schema and its check here agree on every character.
SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACE_CHARS = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(map(chr, range(0x2000, 0x200b)))


def filled(max_length: int, min_chars: int = 1, error: tuple[str, str] = ("string_too_short", "Feltet er for kort."),
           ) -> Any:
    """Text of at most max_length characters with at least min_chars from its first visible character to its
    last, stripped of the whitespace around them. `error`: the (type, message) of a text with too little."""
    kind, message = error

    def check(value: str) -> str:
        stripped = value.strip(_SPACE_CHARS)
        if len(stripped) < min_chars:
            raise PydanticCustomError(kind, message, {"min": min_chars})
        return stripped

    visible = f"[^{SPACE}]" if min_chars == 1 else f"[^{SPACE}][\\s\\S]{{{min_chars - 2},}}[^{SPACE}]"
    return Annotated[str, Field(max_length=max_length, json_schema_extra={"pattern": visible}), AfterValidator(check)]


def _whole(value: Any) -> Any:
    # JSON Schema's integer includes 10.0; "10", true and 10.5 are no whole numbers.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole(ge: int, le: int) -> Any:
    """A whole number within [ge, le] (the bounds go inside, before the validator, so the schema shows them)."""
    return Annotated[int, Field(strict=True, ge=ge, le=le), BeforeValidator(_whole)]

# An ObjectId holds its creation second in 32 unsigned bits: 1970 up to early 2106. Years 1971–2105 fit there
# whatever the offset, and the schema can say so (a pattern) as exactly as the check does.
FIRST_YEAR, LAST_YEAR = 1971, 2105
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]")
YEARS = r"^(197[1-9]|19[89]\d|20\d\d|210[0-5])-"


def _iso_text(value: Any) -> Any:
    # Pydantic would also read a number (or a string of digits) as Unix seconds: 0 would be 1970.
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    if isinstance(value, datetime):  # built in code, not parsed from a request
        return value
    raise PydanticCustomError("datetime_type", "Feltet må vere eit tidspunkt (ISO 8601 med tidssone).")


def _in_range(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise PydanticCustomError("datetime_range", "Tidspunktet må vere mellom år {first} og {last}.",
                                  {"first": FIRST_YEAR, "last": LAST_YEAR})
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_range),
                   Field(description=f"ISO 8601 with a time zone, in the years {FIRST_YEAR}–{LAST_YEAR}",
                         json_schema_extra={"pattern": YEARS})]
