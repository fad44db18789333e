"""The transaction journal: search with filters, and one transaction with its message trail.

A card is searched by its full number, through the journal's keyed hash of it (exact match):
a masked number is shared by many cards. Rows journalled before the hash existed (migration
0002) have none and are not found by card number.

Bank scope (switch.ops.scope): a bank's token finds only transactions of its cards or at its
terminals, is refused (403) a `bank` filter naming another bank, and gets 404 for the RRN of a
transaction that does not concern its bank.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, select

from switch.ops.access import Principal

from shared.banks import BANK_CODES
from switch.journal import Journal
from switch.ops.deps import OpsJournal, ReadConn, Viewer, own_bank
from switch.ops.routes.common import (
    ID_MAX,
    PAGE_MAX,
    From,
    To,
    TransactionPublic,
    WibTime,
    scrub,
    time_window,
    transaction_public,
)
from switch.ops.routes.params import CardNumber
from switch.ops.routes.problems import GUARDED, NOT_FOUND, refuse
from switch.ops.scope import transactions_of
from switch.tables import MessageLog, Transaction

router = APIRouter(prefix="/v1/transactions", tags=["transactions"], responses=GUARDED)

Kind = Literal["inquiry", "purchase", "advice", "reversal"]
# Issuer codes, as written or in capitals ("BRI").
Bank = Literal[tuple(BANK_CODES) + tuple(code.upper() for code in BANK_CODES)]  # type: ignore[valid-type]
Printable = r"^[ -~]+$"
RRN_SHOWN_MAX = 12


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
    at: WibTime


class TransactionDetail(BaseModel):
    transaction: TransactionPublic
    response: dict  # the answer the terminal got (replayed to duplicates)
    messages: list[MessagePublic]  # the trail of this RRN, in time order
    reversals: list[TransactionPublic]  # reversals pointing at this transaction
    original: TransactionPublic | None  # for a reversal: the transaction it reverses


def pan_condition(journal: Journal, pan: str) -> ColumnElement:
    """Exact match on the keyed hash of the full card number."""
    key = journal.pan_hash(pan)
    if key is None:  # never NULL: that would match every row journalled before the hash existed
        refuse("query", "pan", "must be the full card number, 13-19 digits")
    return Transaction.pan_hash == key


@router.get("")
def search(
    principal: Viewer,
    conn: ReadConn,
    journal: OpsJournal,
    start: From = None,
    end: To = None,
    rrn: Annotated[str | None, Query(max_length=12, pattern=Printable, description="Retrieval reference number")] = None,
    pan: Annotated[CardNumber | None, Query(description="The full card number (13-19 digits), matched exactly")] = None,
    terminal: Annotated[str | None, Query(max_length=8, pattern=Printable, description="Terminal id (field 41)")] = None,
    merchant: Annotated[str | None, Query(max_length=15, pattern=Printable, description="e-Warong id (field 42)")] = None,
    rc: Annotated[str | None, Query(pattern=r"^[0-9A-Z]{2}$", description="Response code, e.g. 51")] = None,
    bank: Annotated[Bank | None, Query(description="Issuer routed to")] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX, description="Only transactions older than this id (paging)")] = None,
) -> TransactionPage:
    """Journalled transactions, newest first, filtered by any combination of the parameters."""
    issuer = bank.lower() if bank is not None else None
    own_bank(principal, issuer)
    conditions = time_window(Transaction.created_at, start, end) + transactions_of(principal)
    exact = {
        Transaction.rrn: rrn,
        Transaction.tid: terminal,
        Transaction.mid: merchant,
        Transaction.rc: rc,
        Transaction.bank_code: issuer,
        Transaction.kind: kind,
    }
    conditions += [column == value for column, value in exact.items() if value is not None]
    if pan is not None:
        conditions.append(pan_condition(journal, pan))
    if before_id is not None:
        conditions.append(Transaction.id < before_id)
    query = select(Transaction.__table__).where(*conditions).order_by(Transaction.id.desc()).limit(limit)
    items = [transaction_public(row) for row in conn.execute(query)]
    return TransactionPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.get("/{rrn}", responses=NOT_FOUND)
def detail(
    principal: Viewer,
    rrn: Annotated[str, Path(max_length=64, pattern=Printable, description="Retrieval reference number")],
    conn: ReadConn,
) -> TransactionDetail:
    """One transaction with its message trail, its reversals, or the purchase it reverses."""
    row = conn.execute(select(Transaction.__table__).where(Transaction.rrn == rrn, *transactions_of(principal))).one_or_none()
    if row is None:
        shown = rrn if len(rrn) <= RRN_SHOWN_MAX else "of that length"
        raise HTTPException(404, f"no transaction with RRN {shown}")
    return TransactionDetail(
        transaction=transaction_public(row),
        response=scrub(row.response),
        messages=trail(conn, rrn),
        reversals=reversals_of(conn, rrn, principal),
        original=by_rrn(conn, row.original_rrn, principal) if row.original_rrn else None,
    )


def trail(conn: Connection, rrn: str) -> list[MessagePublic]:
    query = select(MessageLog.__table__).where(MessageLog.rrn == rrn).order_by(MessageLog.at, MessageLog.id)
    return [
        MessagePublic(**{name: getattr(m, name) for name in MessagePublic.model_fields if name != "fields"}, fields=scrub(m.fields))
        for m in conn.execute(query)
    ]


def reversals_of(conn: Connection, rrn: str, principal: Principal) -> list[TransactionPublic]:
    query = select(Transaction.__table__).where(Transaction.original_rrn == rrn, *transactions_of(principal)).order_by(Transaction.id)
    return [transaction_public(row) for row in conn.execute(query)]


def by_rrn(conn: Connection, rrn: str, principal: Principal) -> TransactionPublic | None:
    row = conn.execute(select(Transaction.__table__).where(Transaction.rrn == rrn, *transactions_of(principal))).one_or_none()
    return transaction_public(row) if row is not None else None
