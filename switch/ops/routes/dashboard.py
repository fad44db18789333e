"""The operations dashboard: one JSON answer with what the page draws, and the page itself.

`GET /v1/dashboard?minutes=60` (viewer; bank-scoped as /v1/transactions and /v1/stats/banks: a
bank's token counts only what concerns its bank, switch.ops.scope) answers, for the last
`minutes` whole minutes up to and including the current one (network clock):

- per issuer (and the requests the switch refused before routing, `bank` null): requests per
  minute and approved per minute, totals, approval rate, the response codes, latency of the bank
  calls (p50/p95/p99 by nearest rank over `bank_latency_ms`, the time the bank took to answer);
- the store-and-forward depth (reversals still owed to a bank, whenever they were queued);
- the alerts last seen in the past 24 hours, as `GET /v1/alerts` gives them, evaluated at most
  every `ALERTS_REFRESH_S` seconds per scope (the page polls every few seconds; an evaluation reads
  up to a day of the journal). Without a link to the banks (`app.state.banks` None) the two rules
  that need them (disbursement bursts, double cards) are left out, and `alerts_note` says so;
- the latest transactions of the window, newest first (by journal time, then id), card numbers
  masked.

Every journal query is bounded by the window on `transactions.created_at` (indexed).

`GET /dashboard` (open: the page holds no data; it asks for a token and then reads
/v1/dashboard with it) serves the page, its script and its style sheet from
`switch/ops/dashboard/`, with a Content-Security-Policy that allows only this origin and no
inline script or style.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, DateTime, String, func, select
from sqlalchemy.sql.elements import ColumnElement

from shared.banks import BANK_CODES
from shared.rc import APPROVED, lookup
from switch import alerts as rules
from switch.alerts import AlertFacts
from switch.journal import Journal, saf_acked, saf_cancelled
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Viewer
from switch.ops.routes.alerts import (
    DEFAULT_SINCE,
    AlertPublic,
    BankSource,
    alert_public,
    bank_facts,
    get_thresholds,
    journal_facts,
    rows_start,
)
from switch.ops.routes.common import TransactionPublic, WibTime, transaction_public
from switch.ops.routes.problems import GUARDED
from switch.ops.routes.reconciliation import OpsBanks
from switch.ops.scope import saf_entries_of, transactions_of
from switch.tables import SafEntryRow, Transaction

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"], responses=GUARDED)
page = APIRouter(include_in_schema=False)  # open: static files, no data

MINUTES_MIN = 5
MINUTES_MAX = 1_440
MINUTES_DEFAULT = 60
LATEST_MAX = 100
LATEST_DEFAULT = 20
ALERTS_SHOWN_MAX = 50
ALERTS_REFRESH_S = 30.0
PERCENTILES = (50, 95, 99)
UNROUTED = "unrouted"  # how the page names requests refused before any bank was asked

_transactions = Transaction.__table__
_saf = SafEntryRow.__table__


# -- the answer ------------------------------------------------------------------------------------


class LatencyPublic(BaseModel):
    samples: int = Field(description="Requests with a bank latency in the window")
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: int | None


class MinuteSeries(BaseModel):
    bank: str | None = Field(description="The issuer routed to; null: refused by the switch before any bank was asked")
    requests: list[int] = Field(description="Requests per minute, one per entry of `minute_labels`")
    approved: list[int] = Field(description="Of which approved (response code 00)")


class BankPanel(BaseModel):
    bank: str | None = Field(description="The issuer routed to; null: refused by the switch before any bank was asked")
    requests: int
    approved: int
    approval_rate_pct: float | None = Field(description="approved / requests, in percent (one decimal); null without requests")
    by_rc: dict[str, int] = Field(description="Requests by response code, 00 included")
    latency: LatencyPublic
    saf_pending: int = Field(description="Reversals still owed to this bank")


class DashboardTotals(BaseModel):
    requests: int
    approved: int
    approval_rate_pct: float | None
    last_minute_requests: int = Field(description="Requests in the 60 seconds up to now")
    per_minute_avg: float = Field(description="Requests per minute over the window")
    latency: LatencyPublic
    saf_pending: int
    alerts: int
    critical_alerts: int


class SafDepth(BaseModel):
    pending_total: int = Field(description="Reversals still owed to a bank (not acknowledged, not cancelled)")
    by_bank: dict[str, int]
    oldest_pending_at: WibTime | None


class DashboardPublic(BaseModel):
    scope: str = Field(description="The token's bank, or 'switch' for every bank")
    now: WibTime
    window_minutes: int
    window_start: WibTime = Field(description="Start of the first minute of the window (inclusive)")
    window_end: WibTime = Field(description="End of the current minute (exclusive)")
    minute_labels: list[str] = Field(description="HH:MM (WIB) of each minute of the window, oldest first")
    totals: DashboardTotals
    series: list[MinuteSeries]
    banks: list[BankPanel]
    rc_texts: dict[str, str] = Field(description="The meaning of each response code in the answer")
    saf: SafDepth
    alerts: list[AlertPublic] = Field(description=f"Critical first, then the most recent; at most {ALERTS_SHOWN_MAX}")
    alerts_total: int
    alert_sources: list[BankSource] = Field(description="Whether each bank could be asked (disbursements, double cards)")
    alerts_note: str | None = Field(description="Which alerts are left out, and why; null when none")
    alerts_evaluated_at: WibTime
    alerts_truncated: bool
    latest: list[TransactionPublic] = Field(description="The latest transactions of the window, newest first")


# -- the journal's figures -------------------------------------------------------------------------


def _minute_of(conn: Connection, column: ColumnElement) -> tuple[ColumnElement, type]:
    """The start of the minute of `column`, as an SQL expression, and how rows come back."""
    if conn.dialect.name == "postgresql":
        return func.date_trunc("minute", column, type_=DateTime), datetime
    # SQLite keeps times as "YYYY-MM-DD HH:MM:SS[.ffffff]"
    return func.substr(column, 1, 16, type_=String), str


def percentile(counts: dict[int, int], pct: int) -> int | None:
    """The nearest-rank percentile of values given as {value: how many}: the smallest value with
    at least `pct` percent of all values at or below it."""
    total = sum(counts.values())
    if not total:
        return None
    rank = -(-pct * total // 100)  # ceil(pct/100 * total), at least 1
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= max(rank, 1):
            return value
    return max(counts)


def latency_public(counts: dict[int, int]) -> LatencyPublic:
    p50, p95, p99 = (percentile(counts, p) for p in PERCENTILES)
    return LatencyPublic(samples=sum(counts.values()), p50_ms=p50, p95_ms=p95, p99_ms=p99, max_ms=max(counts) if counts else None)


def _rate(approved: int, requests: int) -> float | None:
    return round(100 * approved / requests, 1) if requests else None


@dataclass
class _BankTally:
    per_minute: list[int]
    approved_per_minute: list[int]
    by_rc: dict[str, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Window:
    now: datetime
    start: datetime  # first minute
    end: datetime  # end of the current minute
    minutes: int


def window_of(now: datetime, minutes: int) -> _Window:
    current = now.replace(second=0, microsecond=0)
    return _Window(now, current - timedelta(minutes=minutes - 1), current + timedelta(minutes=1), minutes)


@dataclass
class _JournalFigures:
    tallies: dict[str | None, _BankTally]
    last_minute: int
    saf_by_bank: dict[str, int]
    saf_oldest: datetime | None
    latest: list[TransactionPublic]


def journal_figures(journal: Journal, principal: Principal, window: _Window, latest: int) -> _JournalFigures:
    t = _transactions.c
    scope = transactions_of(principal)
    in_window = [t.created_at >= window.start, t.created_at < window.end, *scope]
    with journal.db.read() as conn:
        minute, kind = _minute_of(conn, t.created_at)
        tallies: dict[str | None, _BankTally] = {}

        def tally(bank: str | None) -> _BankTally:
            if bank not in tallies:
                tallies[bank] = _BankTally([0] * window.minutes, [0] * window.minutes)
            return tallies[bank]

        for code in BANK_CODES if principal.bank is None else [principal.bank]:
            tally(code)  # every bank in scope is shown, with or without traffic
        grouped = select(minute, t.bank_code, t.rc, func.count()).where(*in_window).group_by(minute, t.bank_code, t.rc)
        for at, bank, rc, count in conn.execute(grouped):
            moment = datetime.strptime(at, "%Y-%m-%d %H:%M") if kind is str else at
            index = int((moment - window.start).total_seconds() // 60)
            if not 0 <= index < window.minutes:
                continue
            found = tally(bank)
            found.per_minute[index] += count
            if rc == APPROVED:
                found.approved_per_minute[index] += count
            found.by_rc[rc] = found.by_rc.get(rc, 0) + count
        latencies = (
            select(t.bank_code, t.bank_latency_ms, func.count())
            .where(*in_window, t.bank_latency_ms.is_not(None))
            .group_by(t.bank_code, t.bank_latency_ms)
        )
        for bank, latency_ms, count in conn.execute(latencies):
            tally(bank).latency[int(latency_ms)] = count
        last_minute = conn.execute(
            select(func.count()).select_from(_transactions)
            .where(t.created_at > window.now - timedelta(minutes=1), t.created_at <= window.now, *scope)
        ).scalar_one()
        owed = [~saf_acked(), ~saf_cancelled(), *saf_entries_of(principal)]
        saf_by_bank = {
            bank: count
            for bank, count in conn.execute(select(_saf.c.bank_code, func.count()).where(*owed).group_by(_saf.c.bank_code))
        }
        saf_oldest = conn.execute(select(func.min(_saf.c.created_at)).where(*owed)).scalar_one()
        for bank in saf_by_bank:
            tally(bank)
        newest = select(_transactions).where(*in_window).order_by(t.created_at.desc(), t.id.desc()).limit(latest)
        rows = [transaction_public(row) for row in conn.execute(newest)]
    return _JournalFigures(tallies, last_minute, saf_by_bank, saf_oldest, rows)


# -- alerts (cached per scope: the page polls) -----------------------------------------------------


@dataclass(frozen=True)
class _Alerts:
    evaluated_at: datetime
    found: list[rules.Alert]
    sources: list[BankSource]
    truncated: bool
    monotonic_s: float


async def current_alerts(request: Request, journal: Journal, banks, principal: Principal, at: datetime) -> _Alerts:  # noqa: ANN001
    """The alerts of /v1/alerts by default (last seen in the past 24 hours), re-evaluated at
    most every ALERTS_REFRESH_S seconds for a scope."""
    state = request.app.state
    cache: dict[str | None, _Alerts] | None = getattr(state, "dashboard_alerts", None)
    if cache is None:
        cache = state.dashboard_alerts = {}  # at most one entry per scope: the switch and each bank
    kept = cache.get(principal.bank)
    if kept is not None and _still_fresh(kept, at):
        return kept
    thresholds = get_thresholds(request)
    since = at - DEFAULT_SINCE
    codes = [principal.bank] if principal.bank is not None else list(BANK_CODES)
    runs, families, sources = await bank_facts(banks, codes)
    start = rows_start(since, runs, thresholds)
    rows, terminals, attempts, truncated = await asyncio.to_thread(journal_facts, journal, principal, start, since, at, thresholds)
    facts = AlertFacts(now=at, rows=rows, disbursements=runs, double_cards=families, terminals=terminals, het_attempts=attempts)
    found = await asyncio.to_thread(rules.detect, facts, thresholds, since)
    fresh = _Alerts(at, found, sources, truncated, time.monotonic())
    cache[principal.bank] = fresh
    return fresh


def _still_fresh(kept: _Alerts, at: datetime) -> bool:
    """Evaluated less than ALERTS_REFRESH_S ago, by the wall clock and by the network's clock
    (which a scenario may move)."""
    fresh_s = timedelta(seconds=ALERTS_REFRESH_S)
    return time.monotonic() - kept.monotonic_s < ALERTS_REFRESH_S and kept.evaluated_at <= at < kept.evaluated_at + fresh_s


def alerts_note(sources: list[BankSource]) -> str | None:
    """Which banks' alerts (disbursement bursts, double cards) are left out, grouped by reason."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for source in sources:
        if source.status != "available":
            by_reason[source.reason or source.status].append(source.bank.upper())
    if not by_reason:
        return None
    parts = [f"{', '.join(banks)} ({reason})" for reason, banks in by_reason.items()]
    return f"Disbursement-burst and double-card alerts are left out for {'; '.join(parts)}."


def _bank_order(bank: str | None) -> tuple:
    """The registry's banks in its order, then any other issuer code, then the unrouted."""
    known = list(BANK_CODES)
    return (bank is None, known.index(bank) if bank in known else len(known), bank or "")


# -- the route -------------------------------------------------------------------------------------


@router.get("")
async def dashboard(
    principal: Viewer,
    request: Request,
    journal: OpsJournal,
    banks: OpsBanks,
    now: Now,
    minutes: Annotated[int, Query(ge=MINUTES_MIN, le=MINUTES_MAX, description="The window: this many minutes up to now")] = MINUTES_DEFAULT,
    latest: Annotated[int, Query(ge=1, le=LATEST_MAX, description="How many of the latest transactions")] = LATEST_DEFAULT,
) -> DashboardPublic:
    """Everything the operations dashboard draws, for the last `minutes` minutes."""
    at = now()
    window = window_of(at, minutes)
    figures = await asyncio.to_thread(journal_figures, journal, principal, window, latest)
    found = await current_alerts(request, journal, banks, principal, at)
    panels = []
    everything: dict[int, int] = defaultdict(int)
    for bank, tally in figures.tallies.items():
        for latency_ms, count in tally.latency.items():
            everything[latency_ms] += count
        requests, approved = sum(tally.per_minute), sum(tally.approved_per_minute)
        panels.append(BankPanel(
            bank=bank, requests=requests, approved=approved, approval_rate_pct=_rate(approved, requests),
            by_rc=dict(sorted(tally.by_rc.items())), latency=latency_public(tally.latency),
            saf_pending=figures.saf_by_bank.get(bank, 0) if bank is not None else 0,
        ))  # fmt: skip
    panels.sort(key=lambda p: _bank_order(p.bank))
    requests, approved = sum(p.requests for p in panels), sum(p.approved for p in panels)
    saf_total = sum(figures.saf_by_bank.values())
    codes = sorted({rc for p in panels for rc in p.by_rc} | {row.rc for row in figures.latest})
    return DashboardPublic(
        scope=principal.scope,
        now=at,
        window_minutes=minutes,
        window_start=window.start,
        window_end=window.end,
        minute_labels=[f"{window.start + timedelta(minutes=n):%H:%M}" for n in range(minutes)],
        totals=DashboardTotals(
            requests=requests, approved=approved, approval_rate_pct=_rate(approved, requests),
            last_minute_requests=figures.last_minute, per_minute_avg=round(requests / minutes, 2),
            latency=latency_public(everything), saf_pending=saf_total, alerts=len(found.found),
            critical_alerts=sum(alert.severity == rules.CRITICAL for alert in found.found),
        ),  # fmt: skip
        series=[
            MinuteSeries(bank=bank, requests=tally.per_minute, approved=tally.approved_per_minute)
            for bank, tally in sorted(figures.tallies.items(), key=lambda item: _bank_order(item[0]))
        ],
        banks=panels,
        rc_texts={rc: lookup(rc).text_en for rc in codes},
        saf=SafDepth(pending_total=saf_total, by_bank=dict(sorted(figures.saf_by_bank.items())), oldest_pending_at=figures.saf_oldest),
        alerts=[alert_public(alert) for alert in found.found[:ALERTS_SHOWN_MAX]],
        alerts_total=len(found.found),
        alert_sources=found.sources,
        alerts_note=alerts_note(found.sources),
        alerts_evaluated_at=found.evaluated_at,
        alerts_truncated=found.truncated or len(found.found) > ALERTS_SHOWN_MAX,
        latest=figures.latest,
    )


# -- the page --------------------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@cache
def static_file(name: str) -> bytes:
    return (resources.files("switch.ops") / "dashboard" / name).read_bytes()


def _static(name: str) -> Response:
    return Response(static_file(name), media_type=STATIC_FILES[name], headers=PAGE_HEADERS)


@page.get("/dashboard")
def dashboard_page() -> Response:
    """The page: sign in with a token, then the figures of /v1/dashboard, redrawn every few seconds."""
    return _static("index.html")


@page.get("/dashboard/dashboard.js")
def dashboard_script() -> Response:
    return _static("dashboard.js")


@page.get("/dashboard/dashboard.css")
def dashboard_style() -> Response:
    return _static("dashboard.css")


@page.get("/dashboard/favicon.svg")
def dashboard_icon() -> Response:
    return _static("favicon.svg")
