"""Input field types both services' HTTP models use where a person means something exact: a yes/no is the JSON
`true` or `false` (not "yes", 1 or 0), a count is a JSON number without a fraction (not "10"), and a moment is an ISO 8601 time with its time zone (not a bare number)
within the range every store and id can hold."""

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field
from pydantic_core import PydanticCustomError

Flag = Annotated[bool, Field(strict=True)]


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
