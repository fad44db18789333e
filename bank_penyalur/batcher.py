"""Authorisations answered in batches by one writer thread: group commit.

Requests queue up while the previous batch commits; the writer takes up to `batch_max` of them,
answers each in turn inside ONE transaction (each sees what the ones before it wrote, so
balances, PIN tries and duplicate keys stay exact) and commits once. The commit's wait for the
disk is then paid once per batch instead of once per purchase, and the event loop hands work to
a single thread instead of a pool that fights over the GIL.

If anything fails inside a batch, the batch is rolled back and every request in it is answered
again on its own, so one bad request never decides another's answer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from bank_penyalur.metrics import BankMetrics
from bank_penyalur.schemas import AuthorisationPublic, _Request
from bank_penyalur.service import Authoriser

log = logging.getLogger("bank_penyalur.batcher")

STOP_TIMEOUT_S = 10.0


class QueueFull(RuntimeError):
    """More authorisations are waiting than the bank accepts; the caller answers 503."""


@dataclass(frozen=True, slots=True)
class _Item:
    op: str
    request: _Request
    future: Future
    submitted_s: float = field(default_factory=time.perf_counter)  # for the latency metric


_STOP = object()


class AuthorisationBatcher:
    def __init__(self, authoriser: Authoriser, batch_max: int = 64, queue_max: int = 4_096, writers: int = 1) -> None:
        assert batch_max >= 1 and queue_max >= batch_max and writers >= 1
        self._authoriser = authoriser
        self._batch_max = batch_max
        self._writers = writers
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self.batches = 0
        self.answered = 0
        self.metrics = BankMetrics(queue_depth=self._queue.qsize)  # GET /metrics

    def submit(self, op: str, request: _Request) -> Future:
        """Queue one request; the future holds its answer (or the exception it raised)."""
        self._ensure_started()
        future: Future = Future()
        try:
            self._queue.put_nowait(_Item(op, request, future))
        except queue.Full:
            raise QueueFull(f"{self._queue.maxsize} authorisations already waiting") from None
        return future

    def stop(self) -> None:
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP, timeout=STOP_TIMEOUT_S)
        for thread in threads:
            thread.join(timeout=STOP_TIMEOUT_S)

    def _ensure_started(self) -> None:
        if self._threads:
            return
        with self._start_lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"authorisations-{n}", daemon=True)
                    for n in range(self._writers)
                ]
                for thread in self._threads:
                    thread.start()

    def _run(self) -> None:
        while True:
            items, stopping = self._collect()
            if items:
                self._answer(items)
            if stopping:
                return

    def _collect(self) -> tuple[list[_Item], bool]:
        """The first waiting request (blocking), then whatever else is already waiting."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        items = [first]
        while len(items) < self._batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
        return items, False

    def _answer(self, items: list[_Item]) -> None:
        self.metrics.batch(len(items))
        try:
            answers = self._answer_together(items)
        except Exception:  # noqa: BLE001 - rolled back; each request is answered on its own below
            log.info("batch of %d rolled back; answering one by one", len(items), exc_info=True)
            self._answer_alone(items)
            return
        for item, answer in zip(items, answers, strict=True):
            self.metrics.answered(item.op, answer.rc, item.submitted_s)
            item.future.set_result(answer)
        self.batches += 1
        self.answered += len(items)

    def _answer_together(self, items: list[_Item]) -> list[AuthorisationPublic]:
        with self._authoriser.db.begin() as conn:
            return self._authoriser.answer_many(conn, [(item.op, item.request) for item in items])

    def _answer_alone(self, items: list[_Item]) -> None:
        for item in items:
            try:
                answer = self._authoriser.authorise(item.op, item.request)
                self.metrics.answered(item.op, answer.rc, item.submitted_s)
                item.future.set_result(answer)
            except Exception as exc:  # noqa: BLE001 - delivered to the waiting request
                item.future.set_exception(exc)
        self.answered += len(items)
