"""Settlement totals per bank for one business date (the transmission date of each request).

- purchases: approved purchases and approved offline advices of that date;
- reversals: approved reversals of that date whose original is an approved purchase or advice,
  counted once per original (a repeated reversal gives nothing back twice) for the original's
  amount (the bank reverses the whole purchase);
- net = purchases - reversals. Integer rupiah throughout.

A bank's token gets the totals of what concerns its bank only (its cards anywhere, any card at
its terminals; switch.ops.scope), still one line per issuer.
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
from switch.ops.access import Principal
from switch.ops.deps import ReadConn, Viewer
from switch.ops.routes.params import RANGE_TEXT, BusinessDate
from switch.ops.routes.problems import GUARDED
from switch.ops.scope import transactions_of
from switch.tables import ADVICE, PURCHASE, REVERSAL, Transaction

router = APIRouter(prefix="/v1/settlement", tags=["settlement"], responses=GUARDED)

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
    principal: Viewer,
    conn: ReadConn,
    day: Annotated[BusinessDate, Query(alias="date", description=f"Business date, YYYY-MM-DD, {RANGE_TEXT}")],
) -> Settlement:
    purchases, reversals = purchase_totals(conn, day, principal), reversal_totals(conn, day, principal)
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


def purchase_totals(conn: Connection, day: date, principal: Principal | None = None) -> Totals:
    t = Transaction
    scope = transactions_of(principal, t) if principal is not None else []
    query = (
        select(t.bank_code, func.count(), func.coalesce(func.sum(t.amount_idr), 0))
        .where(t.transmission_date == day, t.kind.in_(SPENDING), t.rc == APPROVED, t.bank_code.is_not(None), *scope)
        .group_by(t.bank_code)
    )
    return {bank: (int(count), int(amount)) for bank, count, amount in conn.execute(query)}


def reversal_totals(conn: Connection, day: date, principal: Principal | None = None) -> Totals:
    reversal, original, earlier = aliased(Transaction), aliased(Transaction), aliased(Transaction)
    scope = transactions_of(principal, original) if principal is not None else []
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
            *scope,
        )
        .group_by(original.bank_code)
    )
    return {bank: (int(count), int(amount)) for bank, count, amount in conn.execute(query)}
