"""Request and answer models of the authorisation API the switch calls (HTTP/JSON).

Shapes are validated here (a wrong type is a 422 with the field named); business checks such
as an unknown card or a non-positive amount are answered with an ISO response code instead.

Dates travel as text only: a date is `YYYY-MM-DD`, a moment `YYYY-MM-DDTHH:MM[:SS[.ffffff]]`
with an optional UTC offset (business time is WIB; a moment with an offset is converted to WIB).
A number (`"transmission_date": 0`) is refused, not read as a Unix timestamp. Whether a date is
near enough to the bank's own date is checked by the API (`date_window_errors`). Text fields
refuse control characters (`PlainText`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)

from shared.clock import WIB

# Printable text: no C0/C1 control characters (NUL, newline, escape...), which PostgreSQL or a
# report reader cannot take.
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1F\x7F-\x9F]*$"


def plain_text(min_length: int = 0, max_length: int | None = None) -> Any:  # noqa: ANN401 - a type
    """A text field of printable characters (any script), `min_length`..`max_length` long."""
    constraints = StringConstraints(pattern=PLAIN_TEXT_PATTERN, min_length=min_length, max_length=max_length)
    return Annotated[str, constraints]


IdNumberText = plain_text(0, 32)  # NIK, KK number: checked further at account opening
RegionName = plain_text(1, 60)
PersonName = plain_text(1, 100)  # also e-Warong names
ActorName = plain_text(1, 60)
ReasonText = plain_text(0, 200)


_DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MOMENT_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$")


def _date_text(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_TEXT.match(value):
        return value
    raise ValueError("must be a date written YYYY-MM-DD")


def _moment_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _MOMENT_TEXT.match(value):
        return value
    raise ValueError("must be a date and time written YYYY-MM-DDTHH:MM:SS (WIB, or with a UTC offset)")


def _as_wib(moment: datetime) -> datetime:
    """Business time is naive WIB: a moment given with an offset is converted to it."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(WIB).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+14:00 or 9999-12-31T23:59-12:00: beyond year 1..9999 in WIB
        raise ValueError("must be a moment within the years 1-9999 once converted to WIB") from None


def _wib_aware(moment: datetime) -> datetime:
    """A naive business moment (WIB) made explicit, so that it is written with its offset."""
    return moment.replace(tzinfo=WIB) if moment.tzinfo is None else moment


IsoDate = Annotated[date, BeforeValidator(_date_text)]
WibMoment = Annotated[datetime, BeforeValidator(_moment_text), AfterValidator(_as_wib)]
# For answers: a stored naive WIB moment, written as an RFC 3339 date-time with +07:00.
WibDateTime = Annotated[datetime, AfterValidator(_wib_aware)]

# How far a transmission date may be from the bank's own date: a retried reversal or an offline
# upload is days late, never a year.
DATE_WINDOW_DAYS = 366

TerminalId = Annotated[str, StringConstraints(pattern=r"^[ -~]{1,8}$")]
Stan = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
Rrn = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{12}$")]
MerchantId = Annotated[str, StringConstraints(pattern=r"^[ -~]{1,15}$")]
# ASCII digits only (anything else is 422, nothing stored); whether the digits are a card of
# this bank is answered with RC 14.
Pan = Annotated[str, StringConstraints(pattern=r"^[0-9]{0,19}$")]
PinBlockHex = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{16}$")]
ProcessingCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]

# Amounts are checked by the bank (RC 13), but must fit the ledger's 64-bit columns to be stored.
AMOUNT_FIELD_BOUND = 10**15
Amount = Annotated[StrictInt, Field(ge=-AMOUNT_FIELD_BOUND, le=AMOUNT_FIELD_BOUND)]

Operation = Literal["inquiry", "purchase", "reversal", "advice"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    terminal_id: TerminalId
    stan: Stan
    transmission_date: IsoDate = Field(
        description=f"Date of field 7/13 (YYYY-MM-DD), within {DATE_WINDOW_DAYS} days of the bank's date; "
        "part of the idempotency key"
    )
    rrn: Rrn | None = Field(default=None, description="Retrieval reference number from the switch")
    merchant_id: MerchantId
    pan: Pan


class InquiryCreate(_Request):
    pin_block: PinBlockHex
    processing_code: ProcessingCode = "310000"


class PurchaseCreate(_Request):
    pin_block: PinBlockHex
    amount_idr: Amount
    processing_code: ProcessingCode = "000000"


class AdviceCreate(_Request):
    """A purchase approved offline by the EDC (card + ID, no PIN), uploaded later."""

    amount_idr: Amount
    processing_code: ProcessingCode = "000000"
    transaction_at: WibMoment = Field(description="Local time (WIB) of the offline purchase; an offset is converted to WIB")
    offline_approval_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{6}$")] | None = None


class ReversalCreate(_Request):
    amount_idr: Amount
    original_stan: Stan
    original_transmission_date: IsoDate = Field(
        description=f"Transmission date of the purchase reversed, within {DATE_WINDOW_DAYS} days of the bank's date"
    )


class AuthorisationPublic(BaseModel):
    """The bank's answer. The same request always gets the same answer."""

    rc: str
    rc_text: str
    approval_code: str | None = None
    balance_idr: int | None = None
    amount_idr: int | None = None
    terminal_id: str
    stan: str
    transmission_date: date
    rrn: str | None = None


def date_window_errors(request: _Request, today: date) -> list[dict]:
    """Validation errors for the request's dates further than DATE_WINDOW_DAYS from `today`."""
    window = timedelta(days=DATE_WINDOW_DAYS)
    dates = {"transmission_date": request.transmission_date}
    if isinstance(request, ReversalCreate):
        dates["original_transmission_date"] = request.original_transmission_date
    return [
        {
            "loc": ("body", name),
            "msg": f"must be within {DATE_WINDOW_DAYS} days of the bank's date {today.isoformat()}",
            "type": "date_out_of_range",
        }
        for name, value in dates.items()
        if abs(value - today) > window
    ]
