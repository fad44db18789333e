"""The bank's side of reconciliation: every money movement a terminal asked for on one day.

`GET /v1/postings?date=YYYY-MM-DD[&terminal_id=T]` lists the purchase, advice and reversal
requests the bank answered for that transmission date (the business day, WIB), oldest first:
the switch's reconciliation puts them beside its journal and the terminals' batches, by RRN.
Without `date`, every day's (an auditor's full read, one request however many days it spans).
Read-only. A reversal is listed with the RRN and STAN of the purchase it reverses (the switch
sends a reversal under the purchase's own key). Marks left by a reversal that arrived
before its purchase are not requests and are not listed. Pages are bounded (`limit`, at most
`POSTINGS_PAGE_MAX`); `next_after_id` continues.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Row, select
from sqlalchemy.orm import aliased

from shared import rc

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.schemas import IsoDate, TerminalId, WibDateTime
from bank_penyalur.service import REVERSED_BEFORE_ARRIVAL
from bank_penyalur.tables import ADVICE, PURCHASE, REVERSAL, AuthRequest

router = APIRouter(prefix="/v1/postings", tags=["reconciliation"])

POSTINGS_PAGE_MAX = 10_000
MONEY_OPS = (PURCHASE, ADVICE, REVERSAL)
# Advices refused for the offline limit (51) or for age (54) are exceptions even when not flagged.
_OFFLINE_REFUSALS = (rc.INSUFFICIENT_FUNDS, rc.EXPIRED)


class PostingPublic(BaseModel):
    id: int
    op: Literal["purchase", "advice", "reversal"]
    rrn: str | None = Field(description="The switch's RRN; for a reversal, the RRN of the purchase it reverses")
    terminal_id: str
    stan: str = Field(description="The STAN of the request (the switch sends a reversal with the purchase's STAN)")
    original_stan: str | None = Field(description="For a reversal: the STAN of the purchase it reverses, when that arrived")
    transmission_date: date
    merchant_id: str | None
    card_masked: str | None
    amount_idr: int | None
    rc: str
    approval_code: str | None
    posted: bool = Field(description="Money moved: the purchase or advice was debited; the reversal gave a debit back")
    exception: bool = Field(description="An offline advice accepted below zero, or refused (51, 54)")
    created_at: WibDateTime


class PostingsPage(BaseModel):
    bank: str
    business_date: date | None = Field(description="The day asked for; null when every day was")
    terminal_id: str | None
    postings: list[PostingPublic]
    next_after_id: int | None = Field(description="Pass as after_id for the next page; null at the end")


_original = aliased(AuthRequest)


def postings_query(day: date | None, terminal_id: str | None, after_id: int, limit: int):  # noqa: ANN201
    """The money requests of `day` (or of every day; of one terminal, or all), by id, after `after_id`."""
    conditions = [
        AuthRequest.op.in_(MONEY_OPS),
        AuthRequest.payload_hash != REVERSED_BEFORE_ARRIVAL,
        AuthRequest.id > after_id,
    ]
    if day is not None:
        conditions.append(AuthRequest.transmission_date == day)
    if terminal_id is not None:
        conditions.append(AuthRequest.terminal_id == terminal_id)
    return (
        select(AuthRequest.__table__, _original.rrn.label("original_rrn"), _original.stan.label("original_stan"), _original.transfer_id.label("original_transfer_id"))
        .outerjoin(_original, _original.id == AuthRequest.original_id)
        .where(*conditions)
        .order_by(AuthRequest.id)
        .limit(limit)
    )


def posting_public(row: Row) -> PostingPublic:
    return PostingPublic(
        id=row.id,
        op=row.op,
        rrn=row.original_rrn if row.op == REVERSAL else row.rrn,
        terminal_id=row.terminal_id,
        stan=row.stan,
        original_stan=row.original_stan,
        transmission_date=row.transmission_date,
        merchant_id=row.merchant_id,
        card_masked=row.pan_masked,
        amount_idr=row.amount_idr,
        rc=row.rc,
        approval_code=row.approval_code,
        posted=_posted(row),
        exception=bool(row.exception) or (row.op == ADVICE and row.rc in _OFFLINE_REFUSALS),
        created_at=row.created_at,
    )


def _posted(row: Row) -> bool:
    """Money moved: a purchase or advice with its transfer; an approved reversal of one that had."""
    if row.op == REVERSAL:
        return row.rc == rc.APPROVED and row.original_transfer_id is not None
    return row.transfer_id is not None


@router.get("")
def postings(
    conn: ReadConn,
    runtime: Runtime,
    day: Annotated[IsoDate | None, Query(alias="date", description="Business (transmission) date, YYYY-MM-DD; every day when left out")] = None,
    terminal_id: Annotated[TerminalId | None, Query(description="Only this terminal (field 41)")] = None,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only postings after this id (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=POSTINGS_PAGE_MAX)] = POSTINGS_PAGE_MAX,
) -> PostingsPage:
    """Purchases, advices and reversals of one business day (or of every day), with their answers, oldest first."""
    rows = conn.execute(postings_query(day, terminal_id, after_id, limit)).all()
    items = [posting_public(row) for row in rows]
    return PostingsPage(
        bank=runtime.bank.code,
        business_date=day,
        terminal_id=terminal_id,
        postings=items,
        next_after_id=items[-1].id if len(items) == limit else None,
    )
