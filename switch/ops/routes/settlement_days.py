"""Settlement of one business day with the WIB cut-over: per issuing bank, per e-Warong, per
terminal, the banks' net positions, and the day's reconciliation summary; JSON or CSV.

The business day D runs from 00:00 WIB on D to 00:00 WIB on D+1 (Asia/Jakarta has no daylight
saving: always UTC+7). A movement belongs to the day in which the switch journalled it
(`transactions.created_at`, a naive WIB time): the switch's cut-over, so that a day once past
never changes. That differs from `/v1/settlement` (the terminal's transmission date, field 7) for
an offline sale uploaded days later (here: the day of its upload, when the bank posts it) and a
request sent just before midnight but journalled after it.

- purchases: approved purchases and approved offline advices journalled that day;
- reversals: approved reversals journalled that day of an approved purchase or advice (of any
  day), counted once per original and for the original's amount, as `/v1/settlement` counts them;
- net = purchases - reversals, per issuing bank (the card's bank), per e-Warong (field 42) and per
  terminal (field 41), with the acquiring bank (the terminal's own bank);
- net positions: each bank's cardholders spent `issued` (the bank pays it) and its e-Warong sold
  `acquired` (the bank receives it); `net_position_idr = acquired - issued`, positive when the
  bank receives. The positions add up to zero (the network only moves money between banks);
- reconciliation: the summary of the reconciliation report of the same date (`/v1/reconciliation`,
  whose day is the transmission date), null when no terminal had traffic that date; skipped with
  `reconciliation=false` (the report asks every bank for its postings).

JSON by default; CSV with `format=csv` or an Accept header asking for text/csv. A bank's token
sees what concerns its bank (its cards anywhere, any card at its terminals; switch.ops.scope):
its positions are then its bilateral ones, and the reconciliation covers its terminals only.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import aliased

from shared.banks import BANK_CODES
from shared.rc import APPROVED
from switch.journal import Journal
from switch.ops.access import Principal
from switch.ops.deps import OpsJournal, Viewer
from switch.ops.routes.common import WibTime
from switch.ops.routes.params import RANGE_TEXT, BusinessDate
from switch.ops.routes.problems import GUARDED
from switch.ops.routes.reconciliation import CSV_MEDIA_TYPE, OpsBanks, wants_csv
from switch.ops.scope import its_terminal_ids, transactions_of
from switch.reconciliation import BankStatus, Reconciliation, Summary, build_report
from switch.tables import ADVICE, PURCHASE, REVERSAL, Terminal, Transaction

router = APIRouter(prefix="/v1/settlement/days", tags=["settlement"], responses=GUARDED)

CUTOVER = time(0, 0)  # WIB
CUTOVER_TEXT = "00:00 WIB (UTC+07:00)"
SPENDING = (PURCHASE, ADVICE)
UNKNOWN_ACQUIRER = "unknown"
GROUPS_MAX = 100_000  # (terminal, issuer) groups read for one day: far beyond the network's terminals
ISSUE_TERMINALS_SHOWN_MAX = 500
_CSV_ANSWER = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The day's settlement"}}

Sums = list[int]  # [purchase count, purchase amount, reversal count, reversal amount]
GroupKey = tuple[str, str, str]  # (tid, mid, issuing bank)


class Totals(BaseModel):
    purchase_count: int
    purchase_amount_idr: int
    reversal_count: int
    reversal_amount_idr: int
    net_amount_idr: int = Field(description="purchase_amount_idr - reversal_amount_idr")


class IssuerLine(Totals):
    bank: str = Field(description="The issuing bank: its cardholders spent this")


class MerchantLine(Totals):
    merchant_id: str = Field(description="The e-Warong (field 42)")
    acquirer: str = Field(description="The bank whose EDCs the e-Warong uses")
    terminals: list[str]


class TerminalLine(Totals):
    tid: str
    merchant_id: str
    acquirer: str
    issuers: dict[str, int] = Field(description="Net amount per issuing bank of the cards used at this terminal")


class NetPosition(BaseModel):
    bank: str
    issued_amount_idr: int = Field(description="Net spending of the bank's cards, anywhere: the bank pays it")
    acquired_amount_idr: int = Field(description="Net sales at the bank's e-Warong, any card: the bank receives it")
    net_position_idr: int = Field(description="acquired - issued: positive, the bank receives; negative, it pays")
    direction: Literal["receives", "pays", "even"]


class ReconciliationOfDay(BaseModel):
    business_date: date = Field(description="The transmission date reconciled (the same calendar date)")
    banks: list[BankStatus]
    terminals: int
    summary: Summary = Field(description="Every terminal's summary added up")
    terminals_with_issues: list[str] = Field(description=f"At most {ISSUE_TERMINALS_SHOWN_MAX}, in order")
    truncated: bool


class SettlementDay(BaseModel):
    business_date: date
    cutover: str = Field(description="When a business day starts and ends")
    window_start: WibTime
    window_end: WibTime
    banks: list[IssuerLine]
    merchants: list[MerchantLine]
    terminals: list[TerminalLine]
    positions: list[NetPosition]
    total: Totals
    reconciliation: ReconciliationOfDay | None = Field(
        description="Summary of the day's reconciliation; null when no terminal had traffic that date or when not asked for"
    )


# -- the journal's side (synchronous: run it off the event loop) ---------------------------------------


def day_window(day: date) -> tuple[datetime, datetime]:
    """[start, end) of business day `day` in the journal's time (naive WIB)."""
    start = datetime.combine(day, CUTOVER)
    return start, start + timedelta(days=1)


def day_sums(conn: Connection, start: datetime, end: datetime, principal: Principal | None = None) -> dict[GroupKey, Sums]:
    """Per (terminal, e-Warong, issuer): the movements journalled in [start, end) that the
    caller may see (all of them without a principal)."""
    sums: dict[GroupKey, Sums] = defaultdict(lambda: [0, 0, 0, 0])
    for offset, query in ((0, _sales(start, end, principal)), (2, _reversals(start, end, principal))):
        for tid, mid, bank, count, amount in conn.execute(query.limit(GROUPS_MAX)):
            sums[(tid, mid, bank)][offset : offset + 2] = [int(count), int(amount)]
    return dict(sums)


def _scope(principal: Principal | None, rows) -> list:  # noqa: ANN001
    return transactions_of(principal, rows) if principal is not None else []


def _sales(start: datetime, end: datetime, principal: Principal | None):  # noqa: ANN202
    t = Transaction
    return (
        select(t.tid, t.mid, t.bank_code, func.count(), func.coalesce(func.sum(t.amount_idr), 0))
        .where(t.created_at >= start, t.created_at < end, t.kind.in_(SPENDING), t.rc == APPROVED, t.bank_code.is_not(None),
               *_scope(principal, t))  # fmt: skip
        .group_by(t.tid, t.mid, t.bank_code)
    )


def _reversals(start: datetime, end: datetime, principal: Principal | None):  # noqa: ANN202
    reversal, original, earlier = aliased(Transaction), aliased(Transaction), aliased(Transaction)
    already_reversed = (
        select(earlier.id)
        .where(earlier.original_rrn == reversal.original_rrn, earlier.kind == REVERSAL, earlier.rc == APPROVED, earlier.id < reversal.id)
        .exists()
    )
    return (
        select(original.tid, original.mid, original.bank_code, func.count(), func.coalesce(func.sum(original.amount_idr), 0))
        .select_from(reversal)
        .join(original, original.rrn == reversal.original_rrn)
        .where(
            reversal.created_at >= start,
            reversal.created_at < end,
            reversal.kind == REVERSAL,
            reversal.rc == APPROVED,
            original.kind.in_(SPENDING),
            original.rc == APPROVED,
            original.bank_code.is_not(None),
            ~already_reversed,
            *_scope(principal, original),
        )
        .group_by(original.tid, original.mid, original.bank_code)
    )


def acquirers(conn: Connection, tids: set[str]) -> dict[str, str]:
    """The acquiring bank of each terminal (the bank whose EDC it is)."""
    if not tids:
        return {}
    query = select(Terminal.tid, Terminal.bank_code).where(Terminal.tid.in_(sorted(tids)))
    return {tid: bank for tid, bank in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class DayFacts:
    sums: dict[GroupKey, Sums]
    acquirer_of: dict[str, str]
    its_terminals: set[str] | None  # a bank's token: the terminals of its bank; None: all


def read_day(journal: Journal, day: date, principal: Principal | None = None) -> DayFacts:
    start, end = day_window(day)
    with journal.db.read() as conn:
        sums = day_sums(conn, start, end, principal)
        its_terminals = its_terminal_ids(conn, principal) if principal is not None else None
        return DayFacts(sums, acquirers(conn, {tid for tid, _, _ in sums}), its_terminals)


# -- putting it together (pure) ------------------------------------------------------------------------


def _totals(sums: Sums) -> dict:
    count, amount, reversal_count, reversal_amount = sums
    return {
        "purchase_count": count,
        "purchase_amount_idr": amount,
        "reversal_count": reversal_count,
        "reversal_amount_idr": reversal_amount,
        "net_amount_idr": amount - reversal_amount,
    }


def _add(into: Sums, sums: Sums) -> None:
    for i, value in enumerate(sums):
        into[i] += value


def _zero() -> Sums:
    return [0, 0, 0, 0]


@dataclass
class _Tally:
    """The day's sums regrouped: per issuer, e-Warong and terminal, and what each bank acquired."""

    by_bank: dict[str, Sums] = field(default_factory=lambda: defaultdict(_zero))
    by_merchant: dict[str, Sums] = field(default_factory=lambda: defaultdict(_zero))
    by_terminal: dict[str, Sums] = field(default_factory=lambda: defaultdict(_zero))
    issuers_at: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    merchant_of: dict[str, str] = field(default_factory=dict)
    acquired: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: Sums = field(default_factory=_zero)

    def add(self, tid: str, mid: str, bank: str, group: Sums, acquirer: str) -> None:
        for into in (self.by_bank[bank], self.by_merchant[mid], self.by_terminal[tid], self.total):
            _add(into, group)
        net = group[1] - group[3]
        self.issuers_at[tid][bank] = self.issuers_at[tid].get(bank, 0) + net
        self.merchant_of[tid] = mid
        self.acquired[acquirer] += net


def settlement_day(day: date, sums: dict[GroupKey, Sums], acquirer_of: dict[str, str]) -> SettlementDay:
    """The day's lines from the grouped sums (no reconciliation)."""
    tally = _Tally()
    for (tid, mid, bank), group in sums.items():
        tally.add(tid, mid, bank, group, acquirer_of.get(tid, UNKNOWN_ACQUIRER))
    terminals_of: dict[str, list[str]] = defaultdict(list)
    for tid in sorted(tally.merchant_of):
        terminals_of[tally.merchant_of[tid]].append(tid)
    banks = [*BANK_CODES, *sorted((tally.by_bank.keys() | tally.acquired.keys()) - set(BANK_CODES))]
    start, end = day_window(day)
    return SettlementDay(
        business_date=day,
        cutover=CUTOVER_TEXT,
        window_start=start,
        window_end=end,
        banks=[IssuerLine(bank=bank, **_totals(tally.by_bank.get(bank, _zero()))) for bank in banks if bank in BANK_CODES or bank in tally.by_bank],
        merchants=[
            MerchantLine(merchant_id=mid, acquirer=acquirer_of.get(terminals_of[mid][0], UNKNOWN_ACQUIRER), terminals=terminals_of[mid],
                         **_totals(tally.by_merchant[mid]))  # fmt: skip
            for mid in sorted(tally.by_merchant)
        ],
        terminals=[
            TerminalLine(
                tid=tid, merchant_id=tally.merchant_of[tid], acquirer=acquirer_of.get(tid, UNKNOWN_ACQUIRER),
                issuers=dict(sorted(tally.issuers_at[tid].items())), **_totals(tally.by_terminal[tid]),
            )
            for tid in sorted(tally.by_terminal)
        ],
        positions=[_position(bank, tally.by_bank.get(bank, _zero()), tally.acquired.get(bank, 0)) for bank in banks],
        total=Totals(**_totals(tally.total)),
        reconciliation=None,
    )


def _position(bank: str, issued: Sums, acquired_idr: int) -> NetPosition:
    issued_idr = issued[1] - issued[3]
    net = acquired_idr - issued_idr
    direction = "receives" if net > 0 else "pays" if net < 0 else "even"
    return NetPosition(bank=bank, issued_amount_idr=issued_idr, acquired_amount_idr=acquired_idr, net_position_idr=net, direction=direction)


def reconciliation_of_day(report: Reconciliation, its_terminals: set[str] | None = None) -> ReconciliationOfDay | None:
    """The report's terminal summaries added up (only `its_terminals`, when given); None when
    no terminal had traffic."""
    terminals = [t for t in report.terminals if its_terminals is None or t.tid in its_terminals]
    if not terminals:
        return None
    summed = {name: sum(getattr(t.summary, name) for t in terminals) for name in Summary.model_fields}
    with_issues = [t.tid for t in terminals if t.summary.matched < t.summary.lines]
    return ReconciliationOfDay(
        business_date=report.business_date,
        banks=report.banks,
        terminals=len(terminals),
        summary=Summary(**summed),
        terminals_with_issues=with_issues[:ISSUE_TERMINALS_SHOWN_MAX],
        truncated=report.truncated,
    )


# -- CSV ---------------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "record", "business_date", "bank", "merchant_id", "tid", "acquirer", "purchase_count", "purchase_amount_idr",
    "reversal_count", "reversal_amount_idr", "net_amount_idr", "issued_amount_idr", "acquired_amount_idr",
    "net_position_idr", "detail",
)
_TOTAL_FIELDS = tuple(Totals.model_fields)


def day_to_csv(found: SettlementDay) -> str:
    """One row per issuing bank (record "issuer"), e-Warong ("merchant"), terminal ("terminal"),
    bank position ("position"), the day's total ("total"), and, when reconciled, the summary
    ("reconciliation": counts in `detail`) and each bank's status ("reconciliation_bank")."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    day = found.business_date.isoformat()
    for line in found.banks:
        writer.writerow(_row(record="issuer", business_date=day, bank=line.bank, **_amounts(line)))
    for m in found.merchants:
        writer.writerow(_row(record="merchant", business_date=day, merchant_id=m.merchant_id, acquirer=m.acquirer,
                             detail=";".join(m.terminals), **_amounts(m)))  # fmt: skip
    for t in found.terminals:
        issuers = ";".join(f"{bank}={amount}" for bank, amount in t.issuers.items())
        writer.writerow(_row(record="terminal", business_date=day, merchant_id=t.merchant_id, tid=t.tid, acquirer=t.acquirer,
                             detail=issuers, **_amounts(t)))  # fmt: skip
    for p in found.positions:
        writer.writerow(_row(record="position", business_date=day, bank=p.bank, issued_amount_idr=p.issued_amount_idr,
                             acquired_amount_idr=p.acquired_amount_idr, net_position_idr=p.net_position_idr, detail=p.direction))  # fmt: skip
    writer.writerow(_row(record="total", business_date=day, **_amounts(found.total)))
    if found.reconciliation is not None:
        _reconciliation_rows(writer, found.reconciliation)
    return out.getvalue()


def _reconciliation_rows(writer, found: ReconciliationOfDay) -> None:  # noqa: ANN001
    s = found.summary
    counts = [f"{name}={getattr(s, name)}" for name in Summary.model_fields if not name.endswith("_idr")]
    counts += [f"terminals={found.terminals}", f"truncated={'yes' if found.truncated else 'no'}"]
    if found.terminals_with_issues:
        counts.append(f"terminals_with_issues={' '.join(found.terminals_with_issues)}")
    day = found.business_date.isoformat()
    writer.writerow(_row(record="reconciliation", business_date=day, net_amount_idr=s.switch_net_idr,
                         acquired_amount_idr=s.bank_net_idr, detail=";".join(counts)))  # fmt: skip
    for bank in found.banks:
        writer.writerow(_row(record="reconciliation_bank", business_date=day, bank=bank.bank, detail=f"{bank.status} {bank.reason or ''}".strip()))


def _amounts(line: Totals) -> dict:
    return {name: getattr(line, name) for name in _TOTAL_FIELDS}


def _row(**values: object) -> list[str]:
    return ["" if values.get(name) is None else str(values[name]) for name in CSV_COLUMNS]


# -- the route ------------------------------------------------------------------------------------------------


@router.get("/{day}", response_model=SettlementDay, responses=_CSV_ANSWER)
async def settlement_of_day(
    principal: Viewer,
    request: Request,
    journal: OpsJournal,
    banks: OpsBanks,
    day: Annotated[BusinessDate, Path(description=f"Business day, YYYY-MM-DD, {RANGE_TEXT}; cut-over {CUTOVER_TEXT}")],
    reconciliation: Annotated[bool, Query(description="Add the summary of the day's reconciliation (asks the banks)")] = True,
    format_: Annotated[Literal["json", "csv"] | None, Query(alias="format", description="json (default) or csv")] = None,
) -> Response:
    """Totals per issuing bank, e-Warong and terminal, the banks' net positions and the
    reconciliation summary of one business day (WIB cut-over)."""
    facts = await asyncio.to_thread(read_day, journal, day, principal)
    found = settlement_day(day, facts.sums, facts.acquirer_of)
    if reconciliation:
        found.reconciliation = reconciliation_of_day(await build_report(journal, banks, day), facts.its_terminals)
    if wants_csv(request, format_):
        return Response(
            await asyncio.to_thread(day_to_csv, found),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="sembako-settlement-{day.isoformat()}.csv"'},
        )
    return Response(found.model_dump_json(), media_type="application/json")

