"""The switch's Prometheus metrics, served on the ops API's GET /metrics.

Where each number comes from, without touching the message path:

- requests by kind, response code and bank, and the request latency (terminal in -> answer
  out): from what the core hands to the journal (`counting` wraps the journal sink), so every
  journalled request counts once. Not counted: duplicates answered from memory (not journalled
  again), frames from unknown terminals (only logged) and network management (0800).
- bank call latency: the bank client's per-bank counters (`BankCounters.count`), replaced by a
  subclass that also observes the histogram; store-and-forward reversals count too.
- settled batch sizes: the totals (field 63) of a 0500 answered 00, purchases plus reversals.
- SAF depth, terminals signed on, connections: read at scrape time from the journal (one count
  query, off the event loop) and from the running ISO server and core.

Everything on the hot path is a plain addition on the event loop's thread; the families are
built when /metrics is scraped (see shared.metrics), also on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from shared import protocol, rc
from shared.iso8583 import MessageError
from shared.metrics import (
    LATENCY_BUCKETS_S,
    Buckets,
    bounded_rc,
    counter_family,
    exposition,
    gauge_family,
    histogram_family,
    new_registry,
)

from switch.bank_client import BankClient, BankCounters, BankReply, BankUnavailable
from switch.core import KINDS
from switch.journal import Journal, MessageRecord, TransactionRecord, saf_acked, saf_cancelled
from switch.tables import SafEntryRow

if TYPE_CHECKING:
    from switch.runtime import SwitchRuntime

log = logging.getLogger("switch.metrics")

NO_BANK = "none"  # refused before routing: no bank was asked
# Transactions per settled batch (field 63 holds at most 999 purchases and 999 reversals).
BATCH_SIZE_BUCKETS: tuple[float, ...] = (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
JournalSink = Callable[[TransactionRecord | None, Sequence[MessageRecord]], None]


@dataclass(frozen=True, slots=True)
class SwitchGauges:
    """What the running switch knows right now."""

    connections: int  # open terminal connections
    terminals_signed_on: int  # terminals holding working keys


@dataclass
class _TimedBankCounters(BankCounters):
    """The bank client's counters, also observing each call's latency into a histogram."""

    latency: Buckets | None = None

    def count(self, outcome: BankReply | BankUnavailable) -> None:
        super().count(outcome)
        if self.latency is not None:
            self.latency.observe(outcome.latency_ms / 1000)


class SwitchMetrics(Collector):
    """The switch's tallies and their Prometheus collector, in a registry of its own."""

    def __init__(self, journal: Journal | None = None, gauges: Callable[[], SwitchGauges] | None = None) -> None:
        self._journal = journal
        self._gauges = gauges
        self.requests: dict[tuple[str, str, str], int] = {}  # (kind, rc, bank) -> count
        self.request_seconds: dict[tuple[str], Buckets] = {(kind,): Buckets(LATENCY_BUCKETS_S) for kind in sorted(set(KINDS.values()))}
        self.bank_seconds: dict[tuple[str], Buckets] = {}
        self.batch_size = Buckets(BATCH_SIZE_BUCKETS)
        self.saf_depth: int | None = None  # as of the last scrape; None: not known
        self.registry = new_registry()
        self.registry.register(self)

    @classmethod
    def of_runtime(cls, runtime: SwitchRuntime) -> SwitchMetrics:
        """Metrics of a running switch: its journal, its bank client's counters and its live
        gauges (read lazily: the ISO server and the core exist only once it started)."""

        def gauges() -> SwitchGauges:
            iso, core = runtime.iso, runtime.core
            return SwitchGauges(iso.connections if iso else 0, len(core.keys) if core else 0)

        metrics = cls(runtime.journal, gauges)
        metrics.watch_banks(runtime.banks)
        return metrics

    # -- hooks ---------------------------------------------------------------------------------

    def watch_banks(self, banks: BankClient) -> None:
        """Observe every bank call's latency through the client's own per-bank counters."""
        for code, counters in list(banks.counters.items()):
            tally = self.bank_seconds.setdefault((code,), Buckets(LATENCY_BUCKETS_S))
            banks.counters[code] = _TimedBankCounters(**vars(counters), latency=tally)

    def counting(self, sink: JournalSink) -> JournalSink:
        """`sink` (the journal writer's put), also counting each request it is handed."""

        def counted(record: TransactionRecord | None, messages: Sequence[MessageRecord]):  # noqa: ANN202 - the sink's own answer
            written = sink(record, messages)
            try:
                self.journalled(record, messages)
            except Exception:  # noqa: BLE001 - a metrics fault never touches an answer
                log.exception("request not counted in the metrics")
            return written

        return counted

    def journalled(self, record: TransactionRecord | None, messages: Sequence[MessageRecord]) -> None:
        """Count one journalled request: its kind (request MTI), answer code and bank, the time
        from its arrival to its answer, and a settled batch's size."""
        request = answer = None
        bank = record.bank_code if record is not None else None
        for message in messages:
            direction = message.direction
            if direction == "terminal_in":
                request = message
            elif direction == "terminal_out":
                answer = message
            elif direction == "bank_out" and bank is None:
                bank = message.fields.get("bank")
        kind = KINDS.get(request.mti) if request is not None else None
        if kind is None or answer is None:
            return  # network management, or not a request and its answer
        code = bounded_rc(answer.rc)
        key = (kind, code, bank or NO_BANK)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.request_seconds[(kind,)].observe(max(0.0, (answer.at - request.at).total_seconds()))
        if kind == "settlement" and code == rc.APPROVED:
            self._settled(request)

    def _settled(self, request: MessageRecord) -> None:
        try:
            totals = protocol.parse_totals_field(str(request.fields.get("63", "")))
        except MessageError:
            return
        self.batch_size.observe(totals.purchase_count + totals.reversal_count)

    # -- scrape --------------------------------------------------------------------------------

    async def scrape(self) -> bytes:
        """The text exposition; the SAF depth is counted first, off the event loop."""
        if self._journal is not None:
            self.saf_depth = await asyncio.to_thread(self._count_saf, self._journal)
        return exposition(self.registry)

    @staticmethod
    def _count_saf(journal: Journal) -> int | None:
        try:
            with journal.db.read() as conn:
                entries = SafEntryRow.__table__
                return conn.execute(select(func.count()).select_from(entries).where(~saf_acked(), ~saf_cancelled())).scalar_one()
        except SQLAlchemyError:
            log.warning("SAF depth not counted: the journal database did not answer", exc_info=True)
            return None

    def collect(self) -> Iterator:
        yield counter_family(
            "sembako_switch_requests", "Requests answered by the switch, by kind, response code and issuing bank "
            "(bank 'none': refused before routing).", ("kind", "rc", "bank"), self.requests,
        )
        yield histogram_family(
            "sembako_switch_request_seconds", "Seconds from a request's arrival to its answer.", ("kind",), self.request_seconds
        )
        yield histogram_family(
            "sembako_switch_bank_seconds", "Seconds of each call to a bank's authorisation API (timeouts included).",
            ("bank",), self.bank_seconds,
        )
        yield histogram_family("sembako_switch_batch_size", "Transactions (purchases and reversals) per settled batch.", (), {(): self.batch_size})
        if self.saf_depth is not None:
            yield gauge_family("sembako_switch_saf_depth", "Store-and-forward reversals not yet acknowledged by their bank (nor cancelled).", self.saf_depth)
        if self._gauges is not None:
            now = self._gauges()
            yield gauge_family("sembako_switch_terminals_signed_on", "Terminals holding working keys.", now.terminals_signed_on)
            yield gauge_family("sembako_switch_connections", "Open terminal connections.", now.connections)
