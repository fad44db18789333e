"""Alerts for bank operations staff: the field problems the journal, the banks and the e-Warong
POS reveal (see `switch.alerts` for each rule and its thresholds).

`GET /v1/alerts?since=...` gathers the facts and runs the rules:

- the journal's requests from a little before `since` (the longest window of the rules, and the
  start of any disbursement run still within its burst window), at most `ROWS_MAX`, newest kept
  (`truncated` says so); offline advices left out (they arrive in batches, long after the sale);
- each terminal's latest request (within `silent_terminal_lookback_days`, and for a terminal
  without any, its latest ever);
- the sales above HET the POS reported (`POST /v1/het-attempts`);
- from every bank, through the switch's bank client: its disbursement runs
  (`GET /v1/disbursements`) and its families with more than one active card
  (`GET /v1/reports/double-cards`). A bank that does not answer is listed in `banks` with the
  reason, and its two rules are skipped: the rest still answers.

An alert is shown when it was last seen at or after `since` (default: 24 hours before now; at
most `SINCE_DAYS_MAX` days back). A bank's token sees alerts drawn from what concerns its bank
(switch.ops.scope): its cards anywhere and any card at its terminals, its terminals' silence and
its e-Warong's HET reports, its own disbursements and double cards.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Connection, func, select

from shared.banks import BANK_CODES
from shared.clock import WIB
from switch import alerts as rules
from switch.alerts import AlertFacts, AlertThresholds
from switch.bank_client import BankClient, BankUnavailable
from switch.journal import Journal
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Viewer
from switch.ops.routes.common import WibTime
from switch.ops.routes.params import RANGE_TEXT, Moment
from switch.ops.routes.problems import GUARDED, refuse
from switch.ops.routes.reconciliation import OpsBanks
from switch.ops.scope import terminals_of, transactions_of
from switch.tables import ADVICE, HetAttempt, Terminal, Transaction

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=GUARDED)

ROWS_MAX = 200_000  # journal rows one evaluation reads
HET_ROWS_MAX = 50_000
TERMINALS_MAX = 50_000
ALERTS_SHOWN_MAX = 1_000
SINCE_DAYS_MAX = 31
DEFAULT_SINCE = timedelta(hours=24)
RUN_LOOKBACK_MAX = timedelta(days=7)  # rows read before `since` for a disbursement burst, at most
BANK_TIMEOUT_MS = 5_000
BANK_BODY_MAX_BYTES = 4 * 1024 * 1024
DISBURSEMENTS_PATH = "/v1/disbursements"
DOUBLE_CARDS_PATH = "/v1/reports/double-cards"

Kind = Literal[rules.KINDS]  # type: ignore[valid-type]


class SubjectPublic(BaseModel):
    type: Literal["terminal", "merchant", "bank", "family"]
    id: str
    bank: str | None = Field(description="The terminal's or e-Warong's bank, the family's bank, the issuer")
    merchant_id: str | None


class AlertPublic(BaseModel):
    id: str = Field(description="Stable while the alert lasts: kind, subject and first sighting")
    kind: Kind
    severity: Literal["warning", "critical"]
    subject: SubjectPublic
    count: int = Field(description="What the rule counts: cards, purchases, reversals, active cards, days or attempts")
    threshold: int = Field(description="The count from which the alert fires")
    window_minutes: int | None = Field(description="The span the count must fit in; null: no window")
    first_seen: WibTime
    last_seen: WibTime
    message: str
    cards_masked: list[str]
    details: dict


class BankSource(BaseModel):
    bank: str
    status: Literal["available", "unavailable", "not_configured"]
    reason: str | None


class AlertReport(BaseModel):
    since: WibTime
    now: WibTime
    alerts: list[AlertPublic] = Field(description=f"Critical first, then the most recent; at most {ALERTS_SHOWN_MAX}")
    banks: list[BankSource] = Field(description="Whether each bank could be asked (disbursements, double cards)")
    thresholds: dict[str, int]
    truncated: bool = Field(description="More journal rows or alerts than one answer holds: narrow `since`")


def get_thresholds(request: Request) -> AlertThresholds:
    """The running switch's thresholds (`SwitchRuntime` sets them), else the defaults."""
    return getattr(request.app.state, "alert_thresholds", None) or AlertThresholds()


# -- the banks' facts (async) --------------------------------------------------------------------------


async def bank_facts(
    banks: BankClient | None, codes: list[str]
) -> tuple[list[rules.Disbursement], list[rules.DoubleCards], list[BankSource]]:
    results = await asyncio.gather(*(_one_bank(banks, code) for code in codes))
    runs = [run for found, _, _ in results for run in found]
    families = [family for _, found, _ in results for family in found]
    return runs, families, [source for _, _, source in results]


async def _one_bank(banks: BankClient | None, code: str) -> tuple[list, list, BankSource]:
    if banks is None or not banks.knows(code):
        return [], [], BankSource(bank=code, status="not_configured", reason="the switch has no link to this bank")
    runs, families = await asyncio.gather(
        _document(banks, code, DISBURSEMENTS_PATH, {}), _document(banks, code, DOUBLE_CARDS_PATH, {"limit": "1000"})
    )
    for answer in (runs, families):
        if isinstance(answer, BankUnavailable):
            return [], [], BankSource(bank=code, status="unavailable", reason=answer.reason)
    try:
        return _runs(code, runs), _families(code, families), BankSource(bank=code, status="available", reason=None)
    except (KeyError, TypeError, ValueError) as exc:
        return [], [], BankSource(bank=code, status="unavailable", reason=f"unreadable answer: {type(exc).__name__}")


async def _document(banks: BankClient, code: str, path: str, params: dict[str, str]) -> object:
    answer = await banks.fetch(code, path, params, BANK_TIMEOUT_MS, BANK_BODY_MAX_BYTES)
    if isinstance(answer, BankUnavailable):
        return answer
    status, _, body = answer
    if status != 200:
        return BankUnavailable(f"HTTP {status} for {path}", False, 0)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return BankUnavailable(f"{path} is not JSON", False, 0)


def _naive_wib(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.astimezone(WIB).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _runs(code: str, document: object) -> list[rules.Disbursement]:
    if not isinstance(document, list):
        raise TypeError("disbursement runs are not a list")
    return [
        rules.Disbursement(code, str(run["period"]), _naive_wib(run["started_at"]), _naive_wib(run["finished_at"]), int(run["credited"]))
        for run in document
    ]


def _families(code: str, document: object) -> list[rules.DoubleCards]:
    if not isinstance(document, dict):
        raise TypeError("double cards are not an object")
    return [
        rules.DoubleCards(
            bank=code,
            family=str(family["family"]),
            kpm_ids=tuple(int(kpm) for kpm in family["kpm_ids"]),
            cards_masked=tuple(str(card["pan_masked"]) for card in family["cards"]),
            double_since=_naive_wib(family["double_since"]),
        )
        for family in document["families"]
    ]


# -- the journal's facts (synchronous: run them off the event loop) ------------------------------------


def journal_facts(
    journal: Journal, principal: Principal, start: datetime, since: datetime, now: datetime, thresholds: AlertThresholds
) -> tuple[list[rules.JournalRow], list[rules.TerminalActivity], list[rules.HetAttempt], bool]:
    """The journal's facts: requests from `start`, each terminal's latest, the HET reports of
    the window before `since`."""
    with journal.db.read() as conn:
        rows, truncated = journal_rows(conn, principal, start)
        terminals = terminal_activity(conn, principal, now - timedelta(days=thresholds.silent_terminal_lookback_days))
        attempts = het_attempts(conn, principal, since - timedelta(minutes=thresholds.het_window_minutes))
    return rows, terminals, attempts, truncated


def journal_rows(conn: Connection, principal: Principal, start: datetime) -> tuple[list[rules.JournalRow], bool]:
    """The requests journalled from `start` (no advices), oldest first; the newest `ROWS_MAX`."""
    t, k = Transaction, Terminal
    card = func.coalesce(t.pan_hash, t.pan_masked)
    query = (
        select(t.created_at, t.rrn, t.tid, t.mid, t.kind, t.rc, t.bank_code, card, t.pan_masked, t.original_rrn, k.bank_code)
        .select_from(Transaction.__table__.outerjoin(Terminal.__table__, k.tid == t.tid))
        .where(t.created_at >= start, t.kind != ADVICE, *transactions_of(principal, t))
        .order_by(t.created_at.desc(), t.id.desc())
        .limit(ROWS_MAX + 1)
    )
    found = [rules.JournalRow(*row) for row in conn.execute(query)]
    return found[:ROWS_MAX][::-1], len(found) > ROWS_MAX


def terminal_activity(conn: Connection, principal: Principal, lookback_start: datetime) -> list[rules.TerminalActivity]:
    """Each terminal's latest request: within the lookback, else (for the terminals without any
    there) the latest ever; terminals that never had traffic are left out."""
    t, k = Transaction, Terminal
    scope = [t.tid.in_(terminals_of(principal.bank))] if principal.bank is not None else []
    recent = select(t.tid, func.max(t.created_at)).where(t.created_at >= lookback_start, *scope).group_by(t.tid)
    latest = {tid: at for tid, at in conn.execute(recent.limit(TERMINALS_MAX))}
    registered = select(k.tid, k.mid, k.bank_code).where(*([k.bank_code == principal.bank] if principal.bank is not None else []))
    terminals = {tid: (mid, bank) for tid, mid, bank in conn.execute(registered.limit(TERMINALS_MAX))}
    quiet = sorted(set(terminals) - set(latest))
    if quiet:
        older = select(t.tid, func.max(t.created_at)).where(t.tid.in_(quiet)).group_by(t.tid)
        latest |= {tid: at for tid, at in conn.execute(older)}
    return [
        rules.TerminalActivity(tid, *terminals.get(tid, ("", None)), last_at)
        for tid, last_at in sorted(latest.items())
    ]


def het_attempts(conn: Connection, principal: Principal, start: datetime) -> list[rules.HetAttempt]:
    h = HetAttempt
    scope = [h.tid.in_(terminals_of(principal.bank))] if principal.bank is not None else []
    query = (
        select(h.received_at, h.tid, h.mid, h.sku, h.product_name, h.unit, h.price_idr, h.het_idr, h.qty)
        .where(h.received_at >= start, *scope)
        .order_by(h.received_at.desc(), h.id.desc())
        .limit(HET_ROWS_MAX)
    )
    return [rules.HetAttempt(*row) for row in conn.execute(query)][::-1]


# -- the route -----------------------------------------------------------------------------------------------


def alert_public(alert: rules.Alert) -> AlertPublic:
    return AlertPublic(
        id=alert.id,
        kind=alert.kind,
        severity=alert.severity,  # type: ignore[arg-type]
        subject=SubjectPublic(**asdict(alert.subject)),
        count=alert.count,
        threshold=alert.threshold,
        window_minutes=alert.window_minutes,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        message=alert.message,
        cards_masked=list(alert.cards_masked),
        details=alert.details,
    )


def rows_start(since: datetime, runs: list[rules.Disbursement], thresholds: AlertThresholds) -> datetime:
    """From when the rules need the journal: the longest window before `since`, and the start of
    any disbursement run still within its burst window then (at most `RUN_LOOKBACK_MAX` back)."""
    start = since - thresholds.journal_lookback
    burst = timedelta(minutes=thresholds.disbursement_burst_window_minutes)
    for run in runs:
        if run.finished_at + burst >= since:
            start = min(start, max(run.started_at, since - RUN_LOOKBACK_MAX))
    return start


@router.get("")
async def alerts(
    principal: Viewer,
    request: Request,
    journal: OpsJournal,
    banks: OpsBanks,
    now: Now,
    since: Annotated[Moment | None, Query(description=f"Alerts last seen from this moment; default 24 hours ago, at most {SINCE_DAYS_MAX} days; without offset = WIB, {RANGE_TEXT}")] = None,
    kind: Annotated[Kind | None, Query(description="Only alerts of this kind")] = None,
) -> AlertReport:
    """The alerts of the network (or of the token's bank) last seen since `since`."""
    at = now()
    since = since if since is not None else at - DEFAULT_SINCE
    if since < at - timedelta(days=SINCE_DAYS_MAX):
        refuse("query", "since", f"must be within the last {SINCE_DAYS_MAX} days")
    thresholds = get_thresholds(request)
    codes = [principal.bank] if principal.bank is not None else list(BANK_CODES)
    runs, families, sources = await bank_facts(banks, codes)
    start = rows_start(since, runs, thresholds)
    rows, terminals, attempts, truncated = await asyncio.to_thread(journal_facts, journal, principal, start, since, at, thresholds)
    facts = AlertFacts(now=at, rows=rows, disbursements=runs, double_cards=families, terminals=terminals, het_attempts=attempts)
    found = [alert for alert in await asyncio.to_thread(rules.detect, facts, thresholds, since) if kind is None or alert.kind == kind]
    return AlertReport(
        since=since,
        now=at,
        alerts=[alert_public(alert) for alert in found[:ALERTS_SHOWN_MAX]],
        banks=sources,
        thresholds=asdict(thresholds),
        truncated=truncated or len(found) > ALERTS_SHOWN_MAX,
    )
