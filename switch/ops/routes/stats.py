"""Per-bank traffic: requests, approvals, declines by response code, timeouts and bank latency.

A bank's token counts only the transactions that concern its bank (its cards anywhere, any
card at its terminals; switch.ops.scope) and does not get the running switch's live counters
(`live`: every bank's links).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select

from shared.banks import BANK_CODES
from shared.rc import APPROVED, ISSUER_UNAVAILABLE
from switch.ops.deps import ReadConn, StatsProvider, Viewer
from switch.ops.routes.common import From, To, time_window
from switch.ops.routes.problems import GUARDED
from switch.ops.scope import transactions_of
from switch.tables import Transaction

router = APIRouter(prefix="/v1/stats", tags=["statistics"], responses=GUARDED)
log = logging.getLogger("switch.ops")


class BankStats(BaseModel):
    bank: str
    requests: int  # = approved + sum(declined) + timeouts
    approved: int
    declined: dict[str, int]  # by response code, other than 00 and 91
    timeouts: int  # answered 91: the bank did not answer in time or could not be reached
    avg_latency_ms: float | None
    max_latency_ms: int | None


class UnroutedStats(BaseModel):
    """Requests refused by the switch itself, before any bank was asked."""

    requests: int
    by_rc: dict[str, int]


class BankStatsReport(BaseModel):
    banks: list[BankStats]
    unrouted: UnroutedStats
    live: dict | None  # the running switch's own counters, when it provides them


@dataclass
class _Tally:
    approved: int = 0
    timeouts: int = 0
    declined: dict[str, int] = field(default_factory=dict)
    latency_sum: int = 0
    latency_count: int = 0
    latency_max: int | None = None

    def add(self, rc: str, count: int, latency_count: int, latency_sum: int | None, latency_max: int | None) -> None:
        if rc == APPROVED:
            self.approved += count
        elif rc == ISSUER_UNAVAILABLE:
            self.timeouts += count
        else:
            self.declined[rc] = self.declined.get(rc, 0) + count
        self.latency_count += latency_count
        self.latency_sum += int(latency_sum or 0)
        if latency_max is not None:
            self.latency_max = max(self.latency_max or 0, int(latency_max))

    def public(self, bank: str) -> BankStats:
        avg = round(self.latency_sum / self.latency_count, 1) if self.latency_count else None
        requests = self.approved + self.timeouts + sum(self.declined.values())
        declined = dict(sorted(self.declined.items()))
        return BankStats(
            bank=bank, requests=requests, approved=self.approved, declined=declined,
            timeouts=self.timeouts, avg_latency_ms=avg, max_latency_ms=self.latency_max,
        )


@router.get("/banks")
def bank_stats(principal: Viewer, conn: ReadConn, provider: StatsProvider, start: From = None, end: To = None) -> BankStatsReport:
    """All journalled requests per issuer (every kind), optionally within a time window."""
    latency = Transaction.bank_latency_ms
    query = (
        select(Transaction.bank_code, Transaction.rc, func.count(), func.count(latency), func.sum(latency), func.max(latency))
        .where(*time_window(Transaction.created_at, start, end), *transactions_of(principal))
        .group_by(Transaction.bank_code, Transaction.rc)
    )
    tallies: dict[str, _Tally] = {code: _Tally() for code in BANK_CODES}
    unrouted: dict[str, int] = {}
    for bank, rc, count, latency_count, latency_sum, latency_max in conn.execute(query):
        if bank is None:
            unrouted[rc] = unrouted.get(rc, 0) + count
        else:
            tallies.setdefault(bank, _Tally()).add(rc, count, latency_count, latency_sum, latency_max)
    return BankStatsReport(
        banks=[tally.public(bank) for bank, tally in tallies.items()],
        unrouted=UnroutedStats(requests=sum(unrouted.values()), by_rc=dict(sorted(unrouted.items()))),
        live=_live(provider) if principal.bank is None else None,
    )


def _live(provider: Callable[[], dict] | None) -> dict | None:
    if provider is None:
        return None
    try:
        return provider()
    except Exception:  # noqa: BLE001 - the journal figures are still worth showing
        log.exception("live statistics provider failed")
        return {"error": "live statistics unavailable"}
