"""What the routes share: PAN masking on the way out, time filters and the transaction shape.

Times leave the API with their offset (WIB, +07:00): the journal keeps naive WIB times.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import ColumnElement, Row

from shared.cards import mask_pan
from shared.clock import WIB
from shared.rc import lookup
from switch.ops.access import PLAIN_TEXT_PATTERN
from switch.ops.routes.params import RANGE_TEXT, Moment
from switch.ops.routes.problems import refuse

PAGE_MAX = 500
ID_MAX = 10**12 - 1  # far beyond any journal, and short of the 13 digits of a card number

# Keys whose value is a card number, and keys that never leave the switch at all.
PAN_KEYS = frozenset({"2", "pan"})
HIDDEN_KEYS = frozenset({"35", "52", "64", "128", "pin_block"})
# A run of 13-19 digits is treated as a card number wherever it appears.
_PAN_LIKE = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")

_WINDOW = f"ISO 8601 date-time, without offset = WIB, {RANGE_TEXT}"
From = Annotated[Moment | None, Query(alias="from", description=f"From this moment (inclusive); {_WINDOW}")]
To = Annotated[Moment | None, Query(alias="to", description=f"Up to this moment (exclusive); {_WINDOW}")]


def _as_wib(moment: datetime) -> datetime:
    return moment.replace(tzinfo=WIB) if moment.tzinfo is None else moment.astimezone(WIB)


WibTime = Annotated[datetime, AfterValidator(_as_wib)]  # a naive journal time, shown as +07:00


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


def time_window(column: ColumnElement, start: datetime | None, end: datetime | None) -> list[ColumnElement]:
    """Conditions for `start <= column < end` (naive WIB); 422 when the window is empty."""
    if start is not None and end is not None and start >= end:
        refuse("query", "from", "'from' must be earlier than 'to'")
    conditions = []
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


# The reason operations staff give for an action: printable text (any script), kept with card
# numbers masked (mask_text) in case one was typed in.
ReasonText = Annotated[str, StringConstraints(min_length=3, max_length=200, pattern=PLAIN_TEXT_PATTERN)]


class ActionReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ReasonText = Field(description="Why, in a few words (3-200 characters); kept in the audit log")


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
    created_at: WibTime


_PLAIN = tuple(name for name in TransactionPublic.model_fields if name not in ("pan_masked", "rc_text"))


def transaction_public(row: Row) -> TransactionPublic:
    values = {name: getattr(row, name) for name in _PLAIN}
    return TransactionPublic(**values, pan_masked=mask_pan(row.pan_masked), rc_text=lookup(row.rc).text_en)
