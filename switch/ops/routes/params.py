"""Query parameter types of the ops API, each accepting exactly what its OpenAPI pattern says.

- A business date is `YYYY-MM-DD`; a moment is `YYYY-MM-DDTHH:MM[:SS[.ffffff]]`, optionally
  followed by `Z` or an offset `+HH:MM`/`-HH:MM` (without one it is WIB). Numbers (Unix times
  such as `0` or `0.5`), other layouts and impossible dates are refused.
- Both must fall within the years the network can have traffic: 2000-01-01 to 2099-12-31,
  as written and, for a moment with an offset, once converted to WIB.
- A card number is the full PAN, 13-19 digits; a masked one (936000******1234) is refused: it
  is shared by many cards.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.clock import WIB

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
RANGE_TEXT = f"within {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()} (WIB)"

# The layouts accepted (any year, so that a wrong year is told as out of range) ...
_TIME_OF_DAY = r"T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?"
DATE_LAYOUT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
MOMENT_LAYOUT = DATE_LAYOUT + _TIME_OF_DAY
# ... and as the OpenAPI description declares them: years 2000-2099 only.
DATE_PATTERN = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"
MOMENT_PATTERN = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}" + _TIME_OF_DAY + "$"
PAN_PATTERN = r"^[0-9]{13,19}$"


def _refused(message: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", message)  # the message as it is, no "Value error, "


def _text(value: object, pattern: str, layout: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise _refused(f"must be {layout}")
    return value


def _in_range(day: date) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise _refused(f"must be {RANGE_TEXT}")


def parse_business_date(value: object) -> date:
    text = _text(value, DATE_LAYOUT, "a date, YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _refused("must be a real calendar date, YYYY-MM-DD") from None
    _in_range(day)
    return day


def parse_moment(value: object) -> datetime:
    """A moment as the journal keeps it: naive WIB."""
    text = _text(value, MOMENT_LAYOUT, "a date-time, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _refused("must be a real date and time") from None
    _in_range(moment.date())  # as written, and as WIB
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(WIB).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is before year 1 in WIB
            raise _refused(f"must be {RANGE_TEXT}") from None
    _in_range(moment.date())
    return moment


def parse_pan(value: object) -> str:
    return _text(value, PAN_PATTERN.strip("^$"), "the full card number, 13-19 digits (a masked one matches many cards)")


BusinessDate = Annotated[
    date,
    PlainValidator(parse_business_date),
    WithJsonSchema({"type": "string", "pattern": DATE_PATTERN, "examples": ["2026-11-03"]}),
]
Moment = Annotated[
    datetime,
    PlainValidator(parse_moment),
    WithJsonSchema({"type": "string", "pattern": MOMENT_PATTERN, "examples": ["2026-11-03T09:00:00+07:00"]}),
]
CardNumber = Annotated[str, PlainValidator(parse_pan), WithJsonSchema({"type": "string", "pattern": PAN_PATTERN})]
