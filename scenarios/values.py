"""The value types of the scenario format: money, PINs, response codes, durations and names.

Each type checks its input before pydantic does, so a scenario author reads one plain sentence
("expecting a whole number of rupiah, got 10.5") instead of a validator's jargon, and each
carries its JSON Schema so the published schema says the same as the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, PlainSerializer, Tag, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared import rc as rc_table
from shared.banks import BANK_CODES
from shared.clock import WIB, period_bounds
from shared.money import AMOUNT_IDR_MAX

# Union member tags start with "~" so the loader can tell them from keys of the file.
TAG_PREFIX = "~"

PIN_PATTERN = r"^[0-9]{6}$"
NIK_PATTERN = r"^[0-9]{16}$"
PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
CARD_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
SCENARIO_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
TID_PATTERN = r"^[A-Z]{3}[0-9]{5}$"
DURATION_UNITS_S: dict[str, float] = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "ms": 0.001}
DURATION_PATTERN = r"^([0-9]+(ms|d|h|m|s))+$"
_DURATION_PART = re.compile(r"([0-9]+)(ms|d|h|m|s)")
TEXT_CHARS_MAX = 2_000
NAME_CHARS_MAX = 80


def shown(value: Any) -> str:
    """A value as the author wrote it in YAML, for error messages."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def colon_hint(value: Any) -> str:
    """Why a text may have come out as a mapping: YAML reads "a: b" as one."""
    return ' (a ": " inside text starts a mapping: put the text in quotes)' if isinstance(value, dict) else ""


def _fail(kind: str, message: str) -> PydanticCustomError:
    # Braces in the message would be read as template fields by pydantic.
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))


# -- money ---------------------------------------------------------------------------------------


def whole_rupiah(value: Any) -> int:
    """An integer number of rupiah; floats, booleans and texts such as "10.000" are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ""
        if isinstance(value, str) and value.replace(".", "").replace(",", "").strip().isdigit():
            hint = " (write the number without quotes or separators, e.g. 10000)"
        elif isinstance(value, float):
            hint = " (money is integer rupiah, never a fraction)"
        raise _fail("rupiah", f"expecting a whole number of rupiah, got {shown(value)}{hint}")
    return value


def _money_range(minimum: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not minimum <= value <= AMOUNT_IDR_MAX:
            raise _fail("rupiah_range", f"expecting rupiah within [{minimum}, {AMOUNT_IDR_MAX}], got {value}")
        return value

    return check


Rupiah = Annotated[
    int,
    BeforeValidator(whole_rupiah),
    AfterValidator(_money_range(0)),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": AMOUNT_IDR_MAX}),
]
SignedRupiah = Annotated[
    int,
    BeforeValidator(whole_rupiah),
    AfterValidator(_money_range(-AMOUNT_IDR_MAX)),
    WithJsonSchema({"type": "integer", "minimum": -AMOUNT_IDR_MAX, "maximum": AMOUNT_IDR_MAX}),
]


def whole_number(minimum: int, maximum: int, what: str = "a whole number") -> Any:
    """A strict integer within [minimum, maximum] (no floats, texts or booleans)."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("whole_number", f"expecting {what}, got {shown(value)}")
        if not minimum <= value <= maximum:
            raise _fail("number_range", f"expecting {what} within [{minimum}, {maximum}], got {value}")
        return value

    return Annotated[int, BeforeValidator(check), WithJsonSchema({"type": "integer", "minimum": minimum, "maximum": maximum})]


# -- texts with a shape ------------------------------------------------------------------------------


def shaped_text(pattern: str, what: str, example: str, quote_hint: bool = False) -> Any:
    """Text matching `pattern`; anything else is refused naming `what` and an example."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            hint = f' (quote it: "{value}")' if quote_hint and isinstance(value, int) and not isinstance(value, bool) else ""
            raise _fail("text_shape", f"expecting {what} as quoted text such as \"{example}\", got {shown(value)}{hint}")
        if not compiled.fullmatch(value):
            raise _fail("text_shape", f"expecting {what} such as \"{example}\", got {shown(value)}")
        return value

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"type": "string", "pattern": pattern})]


def free_text(chars_max: int = TEXT_CHARS_MAX) -> Any:
    """Non-empty text of at most `chars_max` characters."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail("text", f"expecting text, got {shown(value)}{colon_hint(value)}")
        if not value.strip() or len(value) > chars_max:
            raise _fail("text", f"expecting non-empty text of at most {chars_max} characters")
        return value

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"type": "string", "minLength": 1, "maxLength": chars_max})]


def one_of(values: tuple[str, ...], what: str) -> Any:
    """One text out of `values`, with the choices named when it is not."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in values:
            raise _fail("choice", f"expecting {what}: one of {', '.join(values)}; got {shown(value)}")
        return value

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"type": "string", "enum": list(values)})]


Pin = shaped_text(PIN_PATTERN, "a 6-digit PIN", "123456", quote_hint=True)
Nik = shaped_text(NIK_PATTERN, "a 16-digit NIK", "3273010101900001", quote_hint=True)
CardName = shaped_text(CARD_NAME_PATTERN, "a card name (lower-case letters, digits, _)", "siti")
ScenarioName = shaped_text(SCENARIO_NAME_PATTERN, "a scenario name (lower-case letters, digits, - and _)", "zero-balance")
Tid = shaped_text(TID_PATTERN, "a terminal id", "BNI00001")
StepName = free_text(NAME_CHARS_MAX)
Text = free_text()
BankCode = one_of(BANK_CODES, "a bank")


def _response_code(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(
            "rc",
            f'expecting a response code as quoted text such as "51", got {shown(value)} '
            '(YAML reads 51 as a number and 05 as an octal one)',
        )
    if value not in rc_table.ALL_CODES:
        raise _fail("rc", f"expecting a response code of DESIGN.md (one of {', '.join(rc_table.ALL_CODES)}), got {shown(value)}")
    return value


Rc = Annotated[str, BeforeValidator(_response_code), WithJsonSchema({"type": "string", "enum": list(rc_table.ALL_CODES)})]


def _period(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(PERIOD_PATTERN, value):
        raise _fail("period", f'expecting a period "YYYY-MM" as quoted text such as "2026-11", got {shown(value)}')
    period_bounds(value)
    return value


Period = Annotated[str, BeforeValidator(_period), WithJsonSchema({"type": "string", "pattern": PERIOD_PATTERN})]


# -- time ----------------------------------------------------------------------------------------------


def _wib_datetime(value: Any) -> datetime:
    """A naive WIB datetime from ISO text without offset or with +07:00."""
    example = '"2026-11-03T09:00:00"'
    if not isinstance(value, str):
        raise _fail("datetime", f"expecting an ISO date and time such as {example}, got {shown(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail("datetime", f"expecting an ISO date and time such as {example}, got {shown(value)}") from None
    if "T" not in value and " " not in value:
        raise _fail("datetime", f"expecting a date and a time such as {example}, got only a date {shown(value)}")
    if moment.tzinfo is not None:
        if moment.utcoffset() != WIB.utcoffset(None):
            raise _fail("datetime", f"the start is in WIB: write it without an offset or with +07:00, got {shown(value)}")
        moment = moment.replace(tzinfo=None)
    return moment


WibDateTime = Annotated[
    datetime,
    BeforeValidator(_wib_datetime),
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _iso_date(value: Any) -> date:
    if not isinstance(value, str):
        raise _fail("date", f'expecting a date "YYYY-MM-DD" as text, got {shown(value)}')
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail("date", f'expecting a date "YYYY-MM-DD" such as "2026-11-03", got {shown(value)}') from None


IsoDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    PlainSerializer(lambda day: day.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
]


def parse_duration(text: str) -> timedelta:
    """A timedelta from "91d", "2h", "30m", "45s", "1500ms" or a sum such as "1h30m"."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"not a duration: {text!r}")
    seconds = sum(int(number) * DURATION_UNITS_S[unit] for number, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def duration_text(delta: timedelta) -> str:
    """The shortest duration text for `delta` ("2h", "1h30m", "1500ms")."""
    remaining_ms = round(delta.total_seconds() * 1000)
    if remaining_ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        unit_ms = round(DURATION_UNITS_S[unit] * 1000)
        count, remaining_ms = divmod(remaining_ms, unit_ms)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def duration(maximum: timedelta, minimum: timedelta = timedelta(0)) -> Any:
    """A duration text with units, within [minimum, maximum]."""

    def check(value: Any) -> timedelta:
        example = 'such as "91d", "2h", "30m", "45s" or "500ms"'
        if not isinstance(value, str):
            raise _fail("duration", f"expecting a duration with its unit {example}, got {shown(value)}")
        try:
            delta = parse_duration(value)
        except ValueError:
            raise _fail("duration", f"expecting a duration with its unit {example}, got {shown(value)}") from None
        if not minimum <= delta <= maximum:
            raise _fail(
                "duration_range",
                f"expecting a duration within [{duration_text(minimum)}, {duration_text(maximum)}], got {shown(value)}",
            )
        return delta

    return Annotated[
        timedelta,
        BeforeValidator(check),
        PlainSerializer(duration_text, return_type=str),
        WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
    ]


# -- one or several ----------------------------------------------------------------------------------


def one_or_many(item: Any, items_max: int) -> Any:
    """One value or a list of them (at most `items_max`); always held as a tuple."""

    def which(value: Any) -> str:
        return f"{TAG_PREFIX}many" if isinstance(value, (list, tuple)) else f"{TAG_PREFIX}one"

    return Annotated[
        Union[  # noqa: UP007 - a tagged union needs the explicit form
            Annotated[item, Tag(f"{TAG_PREFIX}one")],
            Annotated[tuple[item, ...], Field(min_length=1, max_length=items_max), Tag(f"{TAG_PREFIX}many")],
        ],
        Discriminator(which),
        AfterValidator(lambda value: value if isinstance(value, tuple) else (value,)),
    ]
