"""Journal writes off the event loop: a bounded queue drained by one thread in batches.

The network thread hands over finished records; the writer commits them in batches (one
database transaction per batch, group commit) and resolves the futures of a whole batch with one
call into the event loop once it is committed. The switch answers a terminal only after its
transaction row is durable (see `SwitchCore._journalled`): a switch killed after answering has
the row, so the journal and the banks' ledgers agree by RRN after any crash. A batch is whatever
queued up while the previous one committed: no wait for company, so a quiet switch answers at once.

Every future is resolved within `wait_s` (plus at most one sweep interval): True once committed,
False when its batch failed, None when the writer did not confirm it in time (the database is
stuck). One timer per writer bounds the waits, not one per record.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence

from switch.journal import Journal, MessageRecord, TransactionRecord

log = logging.getLogger("switch.journal")

_STOP = object()
WAIT_S = 5.0  # a record's future turns None when not committed within this
SWEEP_S = 0.5  # how often the waits are checked against WAIT_S


class JournalWriter:
    def __init__(self, journal: Journal, queue_max: int, batch_max: int, wait_s: float = WAIT_S) -> None:
        self._journal = journal
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._batch_max = batch_max
        self._wait_s = wait_s
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._waits: deque[tuple[float, asyncio.Future]] = deque()  # in the order put: deadlines ascend
        self._sweeping: asyncio.TimerHandle | None = None
        self.written = 0
        self.failed_batches = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, record: TransactionRecord | None, messages: Sequence[MessageRecord]) -> asyncio.Future[bool | None]:
        """Queue a record (from the event loop); blocks (briefly) only when the writer is a full
        queue behind. The future turns True once the record is committed, False if its batch
        failed, None if it was not confirmed within the wait bound."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[bool | None] = loop.create_future()
        self._queue.put((record, tuple(messages), written), timeout=10)
        self._waits.append((time.monotonic() + self._wait_s, written))
        if self._sweeping is None:
            self._sweeping = loop.call_later(SWEEP_S, self._sweep)
        return written

    def stop(self, timeout_s: float = 10.0) -> None:
        self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout=timeout_s)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    # -- the event loop's side -------------------------------------------------------------------

    def _sweep(self) -> None:
        """Forget resolved futures, resolve the overdue ones with None; again while any wait."""
        now, waits = time.monotonic(), self._waits
        while waits and (waits[0][1].done() or waits[0][0] <= now):
            _, written = waits.popleft()
            if not written.done():
                written.set_result(None)
        self._sweeping = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep) if waits else None

    # -- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch, stopping = self._collect()
            if batch:
                self._write(batch)
            if stopping:
                return

    def _collect(self) -> tuple[list, bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _write(self, batch: list) -> None:
        transactions = [record for record, _, _ in batch if record is not None]
        messages = [m for _, ms, _ in batch for m in ms]
        try:
            self._journal.record(transactions, messages)
            self.written += len(transactions)
            committed = True
        except Exception:  # noqa: BLE001 - keep serving; the failure is counted and logged
            self.failed_batches += 1
            log.exception("journal batch of %d transactions not written", len(transactions))
            committed = False
        futures = [written for _, _, written in batch]
        try:
            futures[0].get_loop().call_soon_threadsafe(_resolve, futures, committed)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass


def _resolve(futures: list[asyncio.Future], committed: bool) -> None:
    for written in futures:
        if not written.done():  # (resolved None by the sweep when it came too late)
            written.set_result(committed)
