"""Journal writes off the hot path: a bounded queue drained by one thread in batches.

The network thread hands over finished records and goes on; the writer commits them in
batches (one database transaction per batch). Money is never at stake here: the banks'
ledgers are the record of money and are idempotent; the journal is the record of messages.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from switch.journal import Journal, MessageRecord, TransactionRecord

log = logging.getLogger("switch.journal")

_STOP = object()
FLUSH_WAIT_S = 0.05


class JournalWriter:
    def __init__(self, journal: Journal, queue_max: int, batch_max: int) -> None:
        self._journal = journal
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._batch_max = batch_max
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.written = 0
        self.failed_batches = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, record: TransactionRecord | None, messages: Sequence[MessageRecord]) -> None:
        """Queue a record; blocks (briefly) only when the writer is a full queue behind."""
        self._queue.put((record, tuple(messages)), timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout=timeout_s)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

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
                item = self._queue.get(timeout=FLUSH_WAIT_S if len(batch) < 2 else 0)
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _write(self, batch: list) -> None:
        transactions = [record for record, _ in batch if record is not None]
        messages = [m for _, ms in batch for m in ms]
        try:
            self._journal.record(transactions, messages)
            self.written += len(transactions)
        except Exception:  # noqa: BLE001 - keep serving; the failure is counted and logged
            self.failed_batches += 1
            log.exception("journal batch of %d transactions not written", len(transactions))
