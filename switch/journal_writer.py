"""Journal writes off the event loop: a bounded queue drained by one thread in batches.

The network thread hands over finished records; the writer commits them in batches (one
database transaction per batch, group commit) and resolves each record's future once its batch
is committed. The switch answers a terminal only after its transaction row is durable (see
`SwitchCore._journalled`): a switch killed after answering has the row, so the journal and the
banks' ledgers agree by RRN after any crash. A batch is whatever queued up while the previous
one committed: no wait for company, so a quiet switch answers at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from switch.journal import Journal, MessageRecord, TransactionRecord

log = logging.getLogger("switch.journal")

_STOP = object()


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

    def put(self, record: TransactionRecord | None, messages: Sequence[MessageRecord]) -> Future[bool]:
        """Queue a record; blocks (briefly) only when the writer is a full queue behind. The
        future turns True once the record is committed, False if its batch failed."""
        written: Future[bool] = Future()
        self._queue.put((record, tuple(messages), written), timeout=10)
        return written

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
        for _, _, written in batch:
            written.set_result(committed)
