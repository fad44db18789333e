"""The transaction journal: search with filters, and one transaction with its message trail."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, select

from shared.banks import BANK_CODES
from shared.cards import mask_pan
from switch.ops.deps import ReadConn
from switch.ops.routes.common import ID_MAX, PAGE_MAX, From, To, TransactionPublic, scrub, time_window, transaction_public
from switch.tables import MessageLog, Transaction

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])

_FULL_PAN = re.compile(r"[0-9]{13,19}")
_MASKED_PAN = re.compile(r"[0-9*]{13,19}")
PAN_HELP = "pan must be a card number (13-19 digits) or a masked one such as 936000******1234"

Kind = Literal["inquiry", "purchase", "advice", "reversal"]
Printable = r"^[ -~]+$"


class TransactionPage(BaseModel):
    items: list[TransactionPublic]
    next_before_id: int | None  # pass as before_id for the next (older) page; None at the end


class MessagePublic(BaseModel):
    id: int
    rrn: str | None
    tid: str
    stan: str
    mti: str
    direction: str
    rc: str | None
    fields: dict
    at: datetime


class TransactionDetail(BaseModel):
    transaction: TransactionPublic
    response: dict  # the answer the terminal got (replayed to duplicates)
    messages: list[MessagePublic]  # the trail of this RRN, in time order
    reversals: list[TransactionPublic]  # reversals pointing at this transaction
    original: TransactionPublic | None  # for a reversal: the transaction it reverses


def pan_condition(pan: str) -> ColumnElement:
    """A full PAN is masked before matching (the journal only has masked ones)."""
    if _FULL_PAN.fullmatch(pan):
        return Transaction.pan_masked == mask_pan(pan)
    if _MASKED_PAN.fullmatch(pan):
        return Transaction.pan_masked == pan
    raise HTTPException(422, PAN_HELP)


def bank_condition(bank: str) -> ColumnElement:
    code = bank.lower()
    if code not in BANK_CODES:
        raise HTTPException(422, f"bank must be one of {', '.join(BANK_CODES)}")
    return Transaction.bank_code == code


@router.get("")
def search(
    conn: ReadConn,
    start: From = None,
    end: To = None,
    rrn: Annotated[str | None, Query(max_length=12, pattern=Printable, description="Retrieval reference number")] = None,
    pan: Annotated[str | None, Query(max_length=19, description="Card number, full (masked before matching) or masked")] = None,
    terminal: Annotated[str | None, Query(max_length=8, pattern=Printable, description="Terminal id (field 41)")] = None,
    merchant: Annotated[str | None, Query(max_length=15, pattern=Printable, description="e-Warong id (field 42)")] = None,
    rc: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{2}$", description="Response code, e.g. 51")] = None,
    bank: Annotated[str | None, Query(description=f"Issuer routed to: {', '.join(BANK_CODES)}")] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX, description="Only transactions older than this id (paging)")] = None,
) -> TransactionPage:
    """Journalled transactions, newest first, filtered by any combination of the parameters."""
    conditions = time_window(Transaction.created_at, start, end)
    if pan is not None:
        conditions.append(pan_condition(pan))
    if bank is not None:
        conditions.append(bank_condition(bank))
    exact = {Transaction.rrn: rrn, Transaction.tid: terminal, Transaction.mid: merchant, Transaction.rc: rc, Transaction.kind: kind}
    conditions += [column == value for column, value in exact.items() if value is not None]
    if before_id is not None:
        conditions.append(Transaction.id < before_id)
    query = select(Transaction.__table__).where(*conditions).order_by(Transaction.id.desc()).limit(limit)
    items = [transaction_public(row) for row in conn.execute(query)]
    return TransactionPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.get("/{rrn}")
def detail(rrn: str, conn: ReadConn) -> TransactionDetail:
    """One transaction with its message trail, its reversals, or the purchase it reverses."""
    row = conn.execute(select(Transaction.__table__).where(Transaction.rrn == rrn)).one_or_none()
    if row is None:
        shown = rrn if len(rrn) <= 12 else "of that length"
        raise HTTPException(404, f"no transaction with RRN {shown}")
    return TransactionDetail(
        transaction=transaction_public(row),
        response=scrub(row.response),
        messages=trail(conn, rrn),
        reversals=reversals_of(conn, rrn),
        original=by_rrn(conn, row.original_rrn) if row.original_rrn else None,
    )


def trail(conn: Connection, rrn: str) -> list[MessagePublic]:
    query = select(MessageLog.__table__).where(MessageLog.rrn == rrn).order_by(MessageLog.at, MessageLog.id)
    return [
        MessagePublic(**{name: getattr(m, name) for name in MessagePublic.model_fields if name != "fields"}, fields=scrub(m.fields))
        for m in conn.execute(query)
    ]


def reversals_of(conn: Connection, rrn: str) -> list[TransactionPublic]:
    query = select(Transaction.__table__).where(Transaction.original_rrn == rrn).order_by(Transaction.id)
    return [transaction_public(row) for row in conn.execute(query)]


def by_rrn(conn: Connection, rrn: str) -> TransactionPublic | None:
    row = conn.execute(select(Transaction.__table__).where(Transaction.rrn == rrn)).one_or_none()
    return transaction_public(row) if row is not None else None
