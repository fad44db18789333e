"""Reconciliation of one business day: terminals' batches, the switch journal and the banks' ledgers.

For each terminal (one, or every terminal with traffic that day) the report shows

- its **batches**: every settlement the terminal asked for (its totals as reported in 0500 and
  the switch's totals at that moment, the answer), the batch's totals as the journal sums them
  now, and what the terminal detailed in batch uploads (0320);
- one **line** per money movement, the three sides side by side: the terminal (its 0320, when
  the batch was detailed; a batch closed on equal totals vouches for its lines as a whole), the
  switch journal, and the issuing bank's postings (`GET /v1/postings`, by RRN and key);
- the **issues** of each line: `missing_at_terminal` (the batch was detailed without it: STAN
  gaps are normal, inquiries and network messages take STANs too, but an approved movement
  belongs in the upload), `missing_at_switch`, `missing_at_bank`, `amount_differs`,
  `rc_differs`, `rrn_differs`, and `offline_exception` (an advice the bank accepted below zero
  or refused with 51/54);
- a **summary** per terminal.

The business day is the transmission date (WIB). A reversal belongs to the day (and batch) of
the purchase it reverses, as the bank keys it. A bank that cannot be asked is reported
"unavailable" (with the reason), and so is its side of its lines: the report still answers.
Everything is bounded: rows read per side (`ROWS_MAX`, else `truncated`), bank pages, timeouts.

Reading the journal is synchronous (`switch_side`, run it off the event loop); asking the banks
is async (`bank_side`); `reconcile` puts them together as a pure function.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Connection, and_, func, or_, select

from shared import protocol, rc
from shared.banks import BANK_CODES
from shared.clock import WIB
from shared.iso8583 import MessageError

from switch.bank_client import BankClient, BankUnavailable
from switch.journal import Journal, batch_totals_of
from switch.tables import ADVICE, PURCHASE, REVERSAL, BatchUpload, Settlement, Transaction

ROWS_MAX = 100_000  # of each side of a report (journal rows, uploads, postings per bank)
BANK_PAGE_ROWS = 10_000
BANK_TIMEOUT_MS = 10_000
BANK_BODY_MAX_BYTES = 16 * 1024 * 1024
BANK_CALLS_AT_ONCE = 4
REVERSAL_DAYS_MAX = 7  # a reversal arrives within this many days of its purchase (SAF retries)
SALES = (PURCHASE, ADVICE)
UPLOAD_KINDS = {"0200": PURCHASE, "0220": ADVICE, "0400": REVERSAL}
ISSUES = ("missing_at_terminal", "missing_at_switch", "missing_at_bank", "amount_differs", "rc_differs", "rrn_differs", "offline_exception")

Kind = Literal["purchase", "advice", "reversal"]
LineKey = tuple[str, str, str]  # (tid, kind, STAN of the sale; of the reversed sale for a reversal)


# -- what the report says -----------------------------------------------------------------------


def _as_wib(moment: datetime) -> datetime:
    return moment.replace(tzinfo=WIB) if moment.tzinfo is None else moment.astimezone(WIB)


WibTime = Annotated[datetime, AfterValidator(_as_wib)]  # a naive journal time (WIB), shown with +07:00


class Totals(BaseModel):
    purchase_count: int
    purchase_amount_idr: int
    reversal_count: int
    reversal_amount_idr: int


class SettlementAttempt(BaseModel):
    stan: str
    processing_code: str
    rc: str
    terminal: Totals
    switch: Totals
    at: WibTime


class BatchReport(BaseModel):
    batch: int
    closed: bool
    settlements: list[SettlementAttempt]  # oldest first
    switch_totals: Totals  # as the journal sums the batch now
    uploads: int  # transactions the terminal detailed (0320)
    uploaded_totals: Totals  # what they add up to (every detailed sale and reversal)


class Line(BaseModel):
    tid: str
    batch: int | None
    kind: Kind
    stan: str = Field(description="The sale's STAN; for a reversal, the STAN of the sale it reverses")
    rrn: str | None = Field(description="The switch's RRN (else the bank's or the terminal's)")
    original_rrn: str | None = Field(description="For a reversal: the RRN of the sale it reverses")
    card_masked: str | None
    bank: str | None  # the issuer
    terminal: Literal["uploaded", "missing", "settled", "open"] = Field(
        description="uploaded: in the batch upload; missing: the batch was detailed (or closed after a 95) "
        "without it; settled: the batch closed on equal totals; open: the batch is not settled (yet)"
    )
    terminal_amount_idr: int | None
    switch_amount_idr: int | None
    switch_rc: str | None
    switch_repeats: int = Field(description="Further journal rows of the same movement (a reversal repeated as 0401)")
    bank_side: Literal["found", "missing", "unavailable"]
    bank_amount_idr: int | None
    bank_rc: str | None
    bank_posted: bool | None
    offline_exception: bool
    issues: list[str]


class Summary(BaseModel):
    lines: int
    matched: int
    missing_at_terminal: int
    missing_at_switch: int
    missing_at_bank: int
    amount_differs: int
    rc_differs: int
    rrn_differs: int
    offline_exceptions: int
    switch_net_idr: int = Field(description="Approved sales less approved reversals, as journalled")
    bank_net_idr: int = Field(description="Debits less debits given back, as the banks posted them (banks available)")


class TerminalReport(BaseModel):
    tid: str
    summary: Summary
    batches: list[BatchReport]
    lines: list[Line]


class BankStatus(BaseModel):
    bank: str
    status: Literal["available", "unavailable", "not_configured"]
    reason: str | None
    postings: int
    truncated: bool


class Reconciliation(BaseModel):
    business_date: date
    tid: str | None
    banks: list[BankStatus]
    terminals: list[TerminalReport]
    truncated: bool = Field(description="A side had more rows than one report reads: narrow it to one terminal")


# -- the switch's side -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalRow:
    rrn: str
    tid: str
    stan: str
    key_stan: str  # the sale's STAN (a reversal: of the sale it reverses)
    kind: str
    bank_code: str | None
    card_masked: str
    amount_idr: int
    rc: str
    batch: int | None
    original_rrn: str | None


@dataclass(frozen=True, slots=True)
class UploadRow:
    tid: str
    batch: int
    key_stan: str
    kind: str
    card_masked: str
    amount_idr: int
    rrn: str | None


@dataclass
class BatchFacts:
    settlements: list[SettlementAttempt] = field(default_factory=list)
    switch_totals: Totals | None = None
    uploads: int = 0
    uploaded: list[int] = field(default_factory=lambda: [0, 0, 0, 0])


@dataclass
class SwitchSide:
    rows: list[JournalRow]
    uploads: list[UploadRow]
    batches: dict[tuple[str, int], BatchFacts]
    truncated: bool


def switch_side(journal: Journal, day: date, tid: str | None = None, rows_max: int = ROWS_MAX) -> SwitchSide:
    """What the switch knows of `day` (one terminal or all): journal rows, uploads, batches."""
    with journal.db.read() as conn:
        sales = _limited(conn, _sales_query(day, tid), rows_max)
        reversals = _limited(conn, _reversals_query(day, tid), rows_max)
        uploads = _limited(conn, _uploads_query(day, tid), rows_max)
        rows = [_journal_row(row) for row in sales[0]] + _reversals_of_day(reversals[0], day)
        upload_rows = [_upload_row(row) for row in uploads[0]]
        pairs = {(r.tid, r.batch) for r in rows if r.batch is not None} | {(u.tid, u.batch) for u in upload_rows}
        pairs |= _settled_that_day(conn, day, tid)
        batches = _batch_facts(conn, pairs)
    return SwitchSide(rows, upload_rows, batches, sales[1] or reversals[1] or uploads[1])


def _limited(conn: Connection, query, rows_max: int) -> tuple[list, bool]:  # noqa: ANN001
    rows = conn.execute(query.limit(rows_max + 1)).all()
    return rows[:rows_max], len(rows) > rows_max


def _tid_filter(column, tid: str | None) -> list:  # noqa: ANN001
    return [column == tid] if tid is not None else []


def _sales_query(day: date, tid: str | None):  # noqa: ANN202
    t = Transaction
    return (
        select(Transaction.__table__)
        .where(t.transmission_date == day, t.kind.in_(SALES), *_tid_filter(t.tid, tid))
        .order_by(t.id)
    )


def _reversals_query(day: date, tid: str | None):  # noqa: ANN202
    t = Transaction
    window = (t.transmission_date >= day, t.transmission_date <= day + timedelta(days=REVERSAL_DAYS_MAX))
    return select(Transaction.__table__).where(*window, t.kind == REVERSAL, *_tid_filter(t.tid, tid)).order_by(t.id)


def _uploads_query(day: date, tid: str | None):  # noqa: ANN202
    u = BatchUpload
    of_day = or_(
        and_(u.original_mti != "0400", u.transmission_date == day),
        and_(u.original_mti == "0400", u.original_date == day),
    )
    return select(BatchUpload.__table__).where(of_day, *_tid_filter(u.tid, tid)).order_by(u.id)


def _journal_row(row, key_stan: str | None = None) -> JournalRow:  # noqa: ANN001
    return JournalRow(
        rrn=row.rrn,
        tid=row.tid,
        stan=row.stan,
        key_stan=key_stan or row.stan,
        kind=row.kind,
        bank_code=row.bank_code,
        card_masked=row.pan_masked,
        amount_idr=int(row.amount_idr),
        rc=row.rc,
        batch=row.batch,
        original_rrn=row.original_rrn,
    )


def _reversals_of_day(rows: Iterable, day: date) -> list[JournalRow]:
    """The reversals (read from `day` on) whose purchase is of `day`: field 90 says which."""
    found = []
    for row in rows:
        original = reversed_sale(row.response or {}, row.transmission_date)
        if original is not None and original[1] == day:
            found.append(_journal_row(row, key_stan=original[0]))
        elif original is None and row.transmission_date == day:
            found.append(_journal_row(row))  # unreadable: shown under its own STAN
    return found


def reversed_sale(response: dict, today: date) -> tuple[str, date] | None:
    """(STAN, transmission date) of the sale a reversal reverses, from field 90 of its
    journalled answer; None when it cannot be read."""
    try:
        _, stan, f7 = protocol.parse_original_data(str(response.get("90", "")))
        return stan, protocol.transmission_date(f7, today)
    except MessageError:
        return None


def _upload_row(row) -> UploadRow:  # noqa: ANN001
    kind = UPLOAD_KINDS[row.original_mti]
    key_stan = row.original_stan if kind == REVERSAL and row.original_stan else row.stan
    return UploadRow(row.tid, row.batch, key_stan, kind, row.pan_masked, int(row.amount_idr), row.rrn)


def _settled_that_day(conn: Connection, day: date, tid: str | None) -> set[tuple[str, int]]:
    s = Settlement
    start = datetime.combine(day, datetime.min.time())
    query = select(s.tid, s.batch).where(s.at >= start, s.at < start + timedelta(days=1), *_tid_filter(s.tid, tid))
    return {(row.tid, row.batch) for row in conn.execute(query.limit(ROWS_MAX))}


def _batch_facts(conn: Connection, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], BatchFacts]:
    facts: dict[tuple[str, int], BatchFacts] = {pair: BatchFacts() for pair in pairs}
    tids, numbers = {t for t, _ in pairs}, {b for _, b in pairs}
    if not pairs:
        return facts
    s = Settlement
    query = select(Settlement.__table__).where(s.tid.in_(tids), s.batch.in_(numbers)).order_by(s.id)
    for row in conn.execute(query):
        if (row.tid, row.batch) in facts:
            facts[(row.tid, row.batch)].settlements.append(_attempt(row))
    for (t, b), totals in batch_totals_of(conn, tids, numbers).items():
        if (t, b) in facts:
            facts[(t, b)].switch_totals = Totals(**asdict(totals))
    u = BatchUpload
    grouped = select(u.tid, u.batch, u.original_mti, func.count(), func.coalesce(func.sum(u.amount_idr), 0))
    grouped = grouped.where(u.tid.in_(tids), u.batch.in_(numbers)).group_by(u.tid, u.batch, u.original_mti)
    for t, b, mti, count, amount in conn.execute(grouped):
        if (t, b) in facts:
            entry = facts[(t, b)]
            entry.uploads += int(count)
            slot = 2 if mti == "0400" else 0
            entry.uploaded[slot] += int(count)
            entry.uploaded[slot + 1] += int(amount)
    return facts


def _attempt(row) -> SettlementAttempt:  # noqa: ANN001
    def side(name: str) -> Totals:
        return Totals(**{f: int(getattr(row, f"{name}_{f}")) for f in Totals.model_fields})

    return SettlementAttempt(
        stan=row.stan, processing_code=row.processing_code, rc=row.rc, terminal=side("terminal"), switch=side("switch"), at=row.at
    )


# -- the banks' side ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posting:
    bank: str
    tid: str
    key_stan: str
    kind: str
    rrn: str | None
    card_masked: str | None
    amount_idr: int | None
    rc: str
    posted: bool
    exception: bool


@dataclass
class BankSide:
    statuses: list[BankStatus]
    postings: list[Posting]


async def bank_side(
    banks: BankClient | None, day: date, tid: str | None, bank_codes: Sequence[str] = BANK_CODES, rows_max: int = ROWS_MAX
) -> BankSide:
    """Every network bank's postings of `day` (one terminal or all); a bank that cannot be
    asked is reported, never raised."""
    gate = asyncio.Semaphore(BANK_CALLS_AT_ONCE)

    async def one(code: str) -> tuple[BankStatus, list[Posting]]:
        async with gate:
            return await _bank_postings(banks, code, day, tid, rows_max)

    results = await asyncio.gather(*(one(code) for code in bank_codes))
    return BankSide([status for status, _ in results], [p for _, postings in results for p in postings])


async def _bank_postings(
    banks: BankClient | None, code: str, day: date, tid: str | None, rows_max: int
) -> tuple[BankStatus, list[Posting]]:
    if banks is None or not banks.knows(code):
        return BankStatus(bank=code, status="not_configured", reason="the switch has no link to this bank", postings=0, truncated=False), []
    found: list[Posting] = []
    after_id: int | None = 0
    for _ in range(rows_max // BANK_PAGE_ROWS + 1):  # pages: bounded whatever the bank answers
        params = {"date": day.isoformat(), "after_id": str(after_id), "limit": str(BANK_PAGE_ROWS)}
        if tid is not None:
            params["terminal_id"] = tid
        page = await banks.postings(code, params, BANK_TIMEOUT_MS, BANK_BODY_MAX_BYTES)
        if isinstance(page, BankUnavailable):
            return _unavailable(code, page.reason), []
        try:
            items = page["postings"]
            found += [_posting(code, item) for item in items if item["op"] in UPLOAD_KINDS.values()]
            after_id = None if page["next_after_id"] is None or not items else int(page["next_after_id"])
        except (KeyError, TypeError, ValueError) as exc:
            return _unavailable(code, f"unreadable postings: {type(exc).__name__}"), []
        if after_id is None or len(found) >= rows_max:
            break
    truncated = after_id is not None
    return BankStatus(bank=code, status="available", reason=None, postings=len(found), truncated=truncated), found[:rows_max]


def _unavailable(code: str, reason: str) -> BankStatus:
    return BankStatus(bank=code, status="unavailable", reason=reason, postings=0, truncated=False)


def _posting(bank: str, item: dict) -> Posting:
    return Posting(
        bank=bank,
        tid=str(item["terminal_id"]),
        key_stan=str(item.get("original_stan") or item["stan"]),  # the switch reverses under the sale's STAN anyway
        kind=str(item["op"]),
        rrn=item.get("rrn"),
        card_masked=item.get("card_masked"),
        amount_idr=int(item["amount_idr"]) if item.get("amount_idr") is not None else None,
        rc=str(item["rc"]),
        posted=bool(item["posted"]),
        exception=bool(item["exception"]),
    )


# -- putting them together (pure) -------------------------------------------------------------------


@dataclass
class _Sides:
    journal: list[JournalRow] = field(default_factory=list)
    upload: UploadRow | None = None
    bank: Posting | None = None


def reconcile(day: date, tid: str | None, switch: SwitchSide, banks: BankSide) -> Reconciliation:
    """The report: every line matched by key across the three sides, issues, batches, summaries."""
    sides: dict[LineKey, _Sides] = defaultdict(_Sides)
    for row in switch.rows:
        sides[(row.tid, row.kind, row.key_stan)].journal.append(row)
    for upload in switch.uploads:
        sides[(upload.tid, upload.kind, upload.key_stan)].upload = upload
    for posting in banks.postings:
        if tid is None or posting.tid == tid:
            sides[(posting.tid, posting.kind, posting.key_stan)].bank = posting
    status = {s.bank: s.status for s in banks.statuses}
    lines_of: dict[str, list[Line]] = defaultdict(list)
    for key in sorted(sides):
        lines_of[key[0]].append(_line(key, sides[key], switch.batches, status))
    batches_of: dict[str, list[BatchReport]] = defaultdict(list)
    for (t, b), facts in sorted(switch.batches.items()):
        batches_of[t].append(_batch_report(b, facts))
    terminals = [
        TerminalReport(tid=t, summary=_summary(lines_of[t], sides, t), batches=batches_of[t], lines=lines_of[t])
        for t in sorted(lines_of.keys() | batches_of.keys())
    ]
    truncated = switch.truncated or any(s.truncated for s in banks.statuses)
    return Reconciliation(business_date=day, tid=tid, banks=banks.statuses, terminals=terminals, truncated=truncated)


def _principal(rows: list[JournalRow]) -> JournalRow | None:
    """The journal row that stands for the movement: the first approved one, else the first."""
    return next((r for r in rows if r.rc == rc.APPROVED), rows[0] if rows else None)


def _terminal_state(batch: int | None, upload: UploadRow | None, facts: dict[tuple[str, int], BatchFacts], tid: str) -> str:
    if upload is not None:
        return "uploaded"
    entry = facts.get((tid, batch)) if batch is not None else None
    if entry is None:
        return "open"
    closing = next((s for s in entry.settlements if s.rc == rc.APPROVED), None)
    if entry.uploads or (closing is not None and closing.processing_code == protocol.PROCESSING_SETTLEMENT_AFTER_UPLOAD):
        return "missing"  # the batch was detailed (or closed after a 95 as if it had been) without it
    return "settled" if closing is not None else "open"


def _bank_state(bank_code: str | None, posting: Posting | None, status: dict[str, str]) -> str:
    if posting is not None:
        return "found"
    if bank_code is not None:
        return "missing" if status.get(bank_code) == "available" else "unavailable"
    return "missing" if status and all(s != "unavailable" for s in status.values()) else "unavailable"


def _line(key: LineKey, found: _Sides, facts: dict[tuple[str, int], BatchFacts], status: dict[str, str]) -> Line:
    tid, kind, stan = key
    journal, upload, posting = _principal(found.journal), found.upload, found.bank
    batch = journal.batch if journal is not None and journal.batch is not None else (upload.batch if upload else None)
    bank_code = journal.bank_code if journal is not None and journal.bank_code else (posting.bank if posting else None)
    terminal = _terminal_state(batch, upload, facts, tid)
    bank_state = _bank_state(bank_code, posting, status)
    issues = line_issues(kind, terminal, journal, upload, posting, bank_state)
    return Line(
        tid=tid,
        batch=batch,
        kind=kind,  # type: ignore[arg-type]
        stan=stan,
        rrn=(journal.rrn if journal else None) or (posting.rrn if posting and kind != REVERSAL else None) or (upload.rrn if upload else None),
        original_rrn=(journal.original_rrn if journal else None) or (posting.rrn if posting and kind == REVERSAL else None),
        card_masked=(journal.card_masked if journal else None) or (posting.card_masked if posting else None) or (upload.card_masked if upload else None),
        bank=bank_code,
        terminal=terminal,  # type: ignore[arg-type]
        terminal_amount_idr=upload.amount_idr if upload else None,
        switch_amount_idr=journal.amount_idr if journal else None,
        switch_rc=journal.rc if journal else None,
        switch_repeats=max(0, len(found.journal) - 1),
        bank_side=bank_state,  # type: ignore[arg-type]
        bank_amount_idr=posting.amount_idr if posting else None,
        bank_rc=posting.rc if posting else None,
        bank_posted=posting.posted if posting else None,
        offline_exception=bool(posting and posting.exception),
        issues=issues,
    )


def line_issues(
    kind: str, terminal: str, journal: JournalRow | None, upload: UploadRow | None, posting: Posting | None, bank_state: str
) -> list[str]:
    """What does not agree on one line (see the module docstring), in the order of ISSUES."""
    found: set[str] = set()
    approved = journal is not None and journal.rc == rc.APPROVED
    if terminal == "missing" and (approved or kind == ADVICE or (posting is not None and posting.posted)):
        found.add("missing_at_terminal")
    if journal is None and (upload is not None or posting is not None):
        found.add("missing_at_switch")
    if approved and bank_state == "missing":
        found.add("missing_at_bank")
    amounts = {a for a in (upload and upload.amount_idr, journal and journal.amount_idr, posting and posting.amount_idr) if a}
    if len(amounts) > 1:
        found.add("amount_differs")
    if journal is not None and posting is not None:
        if journal.rc != posting.rc:
            found.add("rc_differs")
        theirs = journal.original_rrn if kind == REVERSAL else journal.rrn
        if posting.rrn and theirs and posting.rrn != theirs:
            found.add("rrn_differs")
    if upload is not None and journal is not None and upload.rrn and kind != ADVICE and upload.rrn != journal.rrn:
        found.add("rrn_differs")
    if posting is not None and posting.exception:
        found.add("offline_exception")
    return [issue for issue in ISSUES if issue in found]


def _batch_report(batch: int, facts: BatchFacts) -> BatchReport:
    zero = Totals(purchase_count=0, purchase_amount_idr=0, reversal_count=0, reversal_amount_idr=0)
    return BatchReport(
        batch=batch,
        closed=any(s.rc == rc.APPROVED for s in facts.settlements),
        settlements=facts.settlements,
        switch_totals=facts.switch_totals or zero,
        uploads=facts.uploads,
        uploaded_totals=Totals(**dict(zip(Totals.model_fields, facts.uploaded, strict=True))),
    )


def _summary(lines: list[Line], sides: dict[LineKey, _Sides], tid: str) -> Summary:
    count = {issue: sum(issue in line.issues for line in lines) for issue in ISSUES}
    switch_net = bank_net = 0
    for key, found in sides.items():
        if key[0] != tid:
            continue
        sign = -1 if key[1] == REVERSAL else 1
        journal = _principal(found.journal)
        if journal is not None and journal.rc == rc.APPROVED:
            switch_net += sign * journal.amount_idr
        if found.bank is not None and found.bank.posted:
            bank_net += sign * (found.bank.amount_idr or 0)
    return Summary(
        lines=len(lines),
        matched=sum(not line.issues for line in lines),
        missing_at_terminal=count["missing_at_terminal"],
        missing_at_switch=count["missing_at_switch"],
        missing_at_bank=count["missing_at_bank"],
        amount_differs=count["amount_differs"],
        rc_differs=count["rc_differs"],
        rrn_differs=count["rrn_differs"],
        offline_exceptions=count["offline_exception"],
        switch_net_idr=switch_net,
        bank_net_idr=bank_net,
    )


async def build_report(journal: Journal, banks: BankClient | None, day: date, tid: str | None = None) -> Reconciliation:
    """The whole report: the journal read off the event loop, the banks asked meanwhile, and the
    lines matched off the event loop too (the loop may be the switch's ISO listener's)."""
    switch, bank = await asyncio.gather(asyncio.to_thread(switch_side, journal, day, tid), bank_side(banks, day, tid))
    return await asyncio.to_thread(reconcile, day, tid, switch, bank)


# -- CSV ---------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "record", "tid", "batch", "kind", "stan", "rrn", "original_rrn", "card_masked", "bank", "terminal",
    "terminal_amount_idr", "switch_amount_idr", "switch_rc", "bank_side", "bank_amount_idr", "bank_rc",
    "offline_exception", "issues",
)


def report_to_csv(report: Reconciliation) -> str:
    """One row per line (record "line"), per batch settlement (record "settlement": terminal and
    switch net totals in the amount columns) and per terminal summary (record "summary": the
    switch's and the banks' net amounts, the counts in `issues`); banks unavailable are named in
    a last row (record "bank")."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for terminal in report.terminals:
        for line in terminal.lines:
            writer.writerow(_csv_line(line))
        for batch in terminal.batches:
            for attempt in batch.settlements:
                writer.writerow(_csv_settlement(terminal.tid, batch.batch, attempt))
        writer.writerow(_csv_summary(terminal))
    for bank in report.banks:
        writer.writerow(_csv_row(record="bank", bank=bank.bank, bank_side=bank.status, issues=bank.reason or ""))
    return out.getvalue()


def _csv_row(**values: object) -> list[str]:
    return ["" if values.get(name) is None else str(values.get(name)) for name in CSV_COLUMNS]


def _csv_line(line: Line) -> list[str]:
    values = line.model_dump()
    values["offline_exception"] = "yes" if line.offline_exception else "no"
    values["issues"] = ";".join(line.issues)
    return _csv_row(record="line", **{k: v for k, v in values.items() if k in CSV_COLUMNS})


def _net(totals: Totals) -> int:
    return totals.purchase_amount_idr - totals.reversal_amount_idr


def _csv_settlement(tid: str, batch: int, attempt: SettlementAttempt) -> list[str]:
    differs = "totals_differ" if attempt.terminal != attempt.switch else ""
    return _csv_row(
        record="settlement", tid=tid, batch=batch, kind=attempt.processing_code, stan=attempt.stan,
        terminal_amount_idr=_net(attempt.terminal), switch_amount_idr=_net(attempt.switch), switch_rc=attempt.rc, issues=differs,
    )


def _csv_summary(terminal: TerminalReport) -> list[str]:
    s = terminal.summary
    counts = ";".join(f"{name}={getattr(s, name)}" for name in Summary.model_fields if not name.endswith("_idr"))
    return _csv_row(record="summary", tid=terminal.tid, switch_amount_idr=s.switch_net_idr, bank_amount_idr=s.bank_net_idr, issues=counts)
