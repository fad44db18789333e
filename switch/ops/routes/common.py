"""What the routes share: PAN masking on the way out, time filters and the transaction shape."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Row

from shared.cards import mask_pan
from shared.rc import lookup

WIB = timezone(timedelta(hours=7), "WIB")
PAGE_MAX = 500
ID_MAX = 10**12 - 1  # far beyond any journal, and short of the 13 digits of a card number

# Keys whose value is a card number, and keys that never leave the switch at all.
PAN_KEYS = frozenset({"2", "pan"})
HIDDEN_KEYS = frozenset({"35", "52", "64", "128", "pin_block"})
# A run of 13-19 digits is treated as a card number wherever it appears.
_PAN_LIKE = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")

From = Annotated[datetime | None, Query(alias="from", description="From this moment (inclusive), ISO 8601; naive = WIB")]
To = Annotated[datetime | None, Query(alias="to", description="Up to this moment (exclusive), ISO 8601; naive = WIB")]


def mask_text(text: str) -> str:
    return _PAN_LIKE.sub(lambda m: mask_pan(m.group()), text)


def scrub(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """A JSON value fit to show: card numbers masked, PIN blocks, track data and MACs removed."""
    if isinstance(value, dict):
        return {
            k: (mask_pan(str(v)) if k in PAN_KEYS and v is not None else scrub(v))
            for k, v in value.items()
            if k not in HIDDEN_KEYS
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def business_time(moment: datetime | None, name: str) -> datetime | None:
    """The journal keeps naive WIB times: an aware moment is converted, a naive one is WIB."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(WIB).replace(tzinfo=None)
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is before year 1 in WIB
        raise HTTPException(422, f"'{name}' is out of range once converted to WIB") from None


def time_window(column: ColumnElement, start: datetime | None, end: datetime | None) -> list[ColumnElement]:
    """Conditions for `start <= column < end`; 422 when the window is empty by construction."""
    start, end = business_time(start, "from"), business_time(end, "to")
    if start is not None and end is not None and start >= end:
        raise HTTPException(422, "'from' must be earlier than 'to'")
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


class TransactionPublic(BaseModel):
    id: int
    rrn: str
    tid: str
    mid: str
    stan: str
    transmission_date: date
    mti: str
    kind: str
    pan_masked: str
    bank_code: str | None
    amount_idr: int
    rc: str
    rc_text: str
    approval_code: str | None
    balance_idr: int | None
    original_rrn: str | None
    bank_latency_ms: int | None
    created_at: datetime


_PLAIN = tuple(name for name in TransactionPublic.model_fields if name not in ("pan_masked", "rc_text"))


def transaction_public(row: Row) -> TransactionPublic:
    values = {name: getattr(row, name) for name in _PLAIN}
    return TransactionPublic(**values, pan_masked=mask_pan(row.pan_masked), rc_text=lookup(row.rc).text_en)
