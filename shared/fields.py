"""Input field types both services' HTTP models use where a person means something exact: a yes/no is the JSON
`true` or `false` (not "yes", 1 or 0), and a moment is an ISO 8601 time with its time zone (not a bare number)
within the range every store and id can hold."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field
from pydantic_core import PydanticCustomError

Flag = Annotated[bool, Field(strict=True)]

# An ObjectId holds its creation second in 32 unsigned bits: 1970 up to early 2106. Every time we accept fits.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2106, 2, 7, tzinfo=UTC)
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d[Tt ]")


def _iso_text(value: Any) -> Any:
    # Pydantic would also read a number (or a string of digits) as Unix seconds: 0 would be 1970.
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    if isinstance(value, datetime):  # built in code, not parsed from a request
        return value
    raise PydanticCustomError("datetime_type", "Feltet må vere eit tidspunkt (ISO 8601 med tidssone).")


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise PydanticCustomError("datetime_range", "Tidspunktet må vere mellom 1970 og 2106.")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_range),
                   Field(description="ISO 8601 with a time zone, between 1970 and 2106")]
