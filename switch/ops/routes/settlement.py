"""Settlement totals per bank for one business date (the transmission date of each request).

- purchases: approved purchases and approved offline advices of that date;
- reversals: approved reversals of that date whose original is an approved purchase or advice,
  counted once per original (a repeated reversal gives nothing back twice) for the original's
  amount (the bank reverses the whole purchase);
- net = purchases - reversals. Integer rupiah throughout.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import aliased

from shared.banks import BANK_CODES
from shared.rc import APPROVED
from switch.ops.deps import ReadConn
from switch.ops.routes.params import RANGE_TEXT, BusinessDate
from switch.ops.routes.problems import UNAVAILABLE
from switch.tables import ADVICE, PURCHASE, REVERSAL, Transaction

router = APIRouter(prefix="/v1/settlement", tags=["settlement"], responses=UNAVAILABLE)

SPENDING = (PURCHASE, ADVICE)
Totals = dict[str, tuple[int, int]]  # bank -> (count, amount in rupiah)


class SettlementLine(BaseModel):
    bank: str
    purchase_count: int
    purchase_amount_idr: int
    reversal_count: int
    reversal_amount_idr: int
    net_amount_idr: int


class Settlement(BaseModel):
    business_date: date
    banks: list[SettlementLine]
    total: SettlementLine  # bank "TOTAL"


@router.get("")
def settlement(
    conn: ReadConn, day: Annotated[BusinessDate, Query(alias="date", description=f"Business date, YYYY-MM-DD, {RANGE_TEXT}")]
) -> Settlement:
    purchases, reversals = purchase_totals(conn, day), reversal_totals(conn, day)
    banks = [*BANK_CODES, *sorted((purchases.keys() | reversals.keys()) - set(BANK_CODES))]
    lines = [_line(bank, purchases.get(bank, (0, 0)), reversals.get(bank, (0, 0))) for bank in banks]
    total = _line(
        "TOTAL",
        (sum(x.purchase_count for x in lines), sum(x.purchase_amount_idr for x in lines)),
        (sum(x.reversal_count for x in lines), sum(x.reversal_amount_idr for x in lines)),
    )
    return Settlement(business_date=day, banks=lines, total=total)


def _line(bank: str, purchases: tuple[int, int], reversals: tuple[int, int]) -> SettlementLine:
    return SettlementLine(
        bank=bank,
        purchase_count=purchases[0],
        purchase_amount_idr=purchases[1],
        reversal_count=reversals[0],
        reversal_amount_idr=reversals[1],
        net_amount_idr=purchases[1] - reversals[1],
    )


def purchase_totals(conn: Connection, day: date) -> Totals:
    t = Transaction
    query = (
        select(t.bank_code, func.count(), func.coalesce(func.sum(t.amount_idr), 0))
        .where(t.transmission_date == day, t.kind.in_(SPENDING), t.rc == APPROVED, t.bank_code.is_not(None))
        .group_by(t.bank_code)
    )
    return {bank: (int(count), int(amount)) for bank, count, amount in conn.execute(query)}


def reversal_totals(conn: Connection, day: date) -> Totals:
    reversal, original, earlier = aliased(Transaction), aliased(Transaction), aliased(Transaction)
    already_reversed = (
        select(earlier.id)
        .where(
            earlier.original_rrn == reversal.original_rrn,
            earlier.kind == REVERSAL,
            earlier.rc == APPROVED,
            earlier.id < reversal.id,
        )
        .exists()
    )
    query = (
        select(original.bank_code, func.count(), func.coalesce(func.sum(original.amount_idr), 0))
        .select_from(reversal)
        .join(original, original.rrn == reversal.original_rrn)
        .where(
            reversal.transmission_date == day,
            reversal.kind == REVERSAL,
            reversal.rc == APPROVED,
            original.kind.in_(SPENDING),
            original.rc == APPROVED,
            original.bank_code.is_not(None),
            ~already_reversed,
        )
        .group_by(original.bank_code)
    )
    return {bank: (int(count), int(amount)) for bank, count, amount in conn.execute(query)}
