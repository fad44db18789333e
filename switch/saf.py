"""Store-and-forward reversals: retried until the bank acknowledges (or operations staff cancel
them), across restarts. With several switch processes on one database, a process sends only the
entries it holds a lease on (switch.workers.SafLeases)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from switch.bank_client import BankClient, BankReply
from switch.journal import Journal
from switch.workers import SafLeases

log = logging.getLogger("switch.saf")


class SafForwarder:
    def __init__(
        self, journal: Journal, banks: BankClient, now: Callable[[], datetime], interval_ms: int, batch_max: int,
        leases: SafLeases | None = None,
    ) -> None:
        self._journal = journal
        self._leases = leases  # with several switch processes: send only entries leased to this one
        self._banks = banks
        self._now = now
        self._interval_s = interval_ms / 1000
        self._batch_max = batch_max
        self.delivered = 0
        self._unreadable: set[int] = set()  # entries already reported as not deliverable

    async def enqueue(self, rrn: str, bank_code: str, body: dict) -> None:
        """Persist a reversal to deliver; returns once it is stored."""
        await asyncio.to_thread(self._journal.enqueue_saf, rrn, bank_code, body, self._now())
        log.warning("reversal for rrn %s queued for %s", rrn, bank_code)

    async def run(self) -> None:
        while True:
            await self.deliver_pending()
            await asyncio.sleep(self._interval_s)

    async def deliver_pending(self) -> int:
        # Without the entries operations staff cancelled (switch.controls): never sent again.
        if self._leases is None:
            pending, until = await asyncio.to_thread(self._journal.pending_saf, self._batch_max), None
        else:
            pending, until = await asyncio.to_thread(self._leases.claim, self._batch_max)
        delivered = 0
        for entry in pending:
            if until is not None and not self._leases.may_send(until):
                break  # the lease runs out: the rest waits for the next round (and a new lease)
            if not entry.card_readable:
                # Sealed under another PAN key: sending it would reverse the wrong card or none.
                if entry.id not in self._unreadable:
                    self._unreadable.add(entry.id)
                    log.error("reversal for rrn %s not delivered: its card number does not open under the PAN key", entry.rrn)
                continue
            outcome = await self._banks.send(entry.bank_code, "reversal", entry.body)
            if isinstance(outcome, BankReply):
                # Any answer is final: the bank applied the reversal, or had nothing to reverse.
                await asyncio.to_thread(self._journal.record_saf_attempt, entry.id, "ack", f"rc {outcome.rc}", self._now())
                delivered += 1
            else:
                await asyncio.to_thread(self._journal.record_saf_attempt, entry.id, "error", outcome.reason, self._now())
        self.delivered += delivered
        return delivered
