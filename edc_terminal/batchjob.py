"""Offline-advice upload and batch settlement: a UI-free state machine with many messages in flight.

The core starts a job (`EdcCore.start_settlement`, `EdcCore.start_upload`); a driver
(`edc_terminal.headless.run_job`) runs it: it asks `poll(capacity)` for messages to send (at most
`capacity`, its free window), hands each answer to `on_response` and each missing answer to
`on_timeout`, until `done`. Answers are matched by (MTI class, STAN), so they may come in any order.

Steps, in order; each ends only when all its messages are answered or given up:

1. **Pending reversals**, as 0401 repeats (the core's stored reversals). Settlement does not go
   on while one is left: the batch totals would be wrong.
2. **Offline advices**: every stored 0220 without a definite answer, sent unchanged (same STAN,
   same 7/12/13). Any RC but 91, 96 and 30 is definite and stored (00 counts in the totals; 51,
   54 and other declines are exceptions, kept and reported). No answer, or 91/96/30: the advice
   stays for the next attempt, and the job stops ("upload belum selesai"). An upload job ends here.
3. **Settlement**, per batch not closed yet, oldest first (sealed ones, then the open one): 0500
   920000 with the terminal's totals. 00 closes the batch. 95: every transaction of the totals
   goes up as 0320 (pipelined), then 0500 960000; 00 closes it. Anything else stops the job.

   A sealed batch need not wait for step 2 to end: once every advice of it and of the batches
   before it has a definite answer, its 0500 920000 goes while later batches' advices upload (one
   such settlement at a time, in order: a link's round trip per batch is no longer paid at the
   end). Anything but 00 ends these early settlements; step 3 then takes that batch from the
   start (a 95 there uploads its details).

Everything that happened is in the batch store before the next message goes, so a crash at any
point and a new job later continue safely: the switch answers repeats idempotently, and a batch
already closed there with the same totals is answered 00 again. The exception: definite answers
to advices are held in memory and stored together, `ANSWERS_HELD_MAX` at a time, or once the
oldest has waited `ANSWERS_HELD_MS`, and always before the next step (which reads them: totals,
exceptions). A crash meanwhile only sends those advices again, and the switch answers the
repeats as before: the bank posts each advice once.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from edc_terminal.batchstore import (
    ADVICE, ADVICES_PAGE_MAX, UPLOAD, AdviceAnswer, AdviceException, BatchInfo, BatchStore, is_definite,
)
from shared import protocol
from shared import rc as rc_table
from shared.iso8583 import Message, response_mti

# Messages in flight while uploading: the link's round trip is paid once per window. On the online
# profile (bench/link.py offline, 10,000 advices): 128 took 15.2 s, 256 12.3 s, and 512, with the
# switch's own bound raised alike, 6.8 s.
DEFAULT_WINDOW = 512
WINDOW_MAX = 1024
ANSWERS_HELD_MAX = 64  # definite advice answers stored together (one commit)...
ANSWERS_HELD_MS = 1_000  # ...or once the oldest of them has waited this long
# A reversal answered with one of these stays pending (as in the core).
REVERSAL_RETRY_RCS = (rc_table.ISSUER_UNAVAILABLE, rc_table.SYSTEM_ERROR)


class JobKind(enum.StrEnum):
    SETTLE = "settle"
    UPLOAD = "upload"


class Phase(enum.StrEnum):
    REVERSALS = "reversals"
    ADVICES = "advices"
    SETTLE = "settle"
    DETAILS = "details"
    DONE = "done"


class JobHost(Protocol):
    """What a job needs from its terminal (the core implements it)."""

    terminal: protocol.Terminal

    def now(self) -> datetime: ...

    def next_stan(self) -> str: ...

    def encode(self, message: Message) -> bytes:
        """The message MACed under the terminal MAC key."""
        ...

    def mac_ok(self, message: Message, raw: bytes) -> bool: ...

    def pending_reversals(self) -> list[Message]:
        """The stored reversals, each as its next 0401 repeat."""
        ...

    def reversal_answered(self, stan: str, rc: str, answer: Message) -> None: ...

    def batch_closed(self, number: int, open_batch: int) -> None: ...

    def link(self, up: bool) -> None: ...

    def finished(self, result: JobResult) -> None: ...


@dataclass(frozen=True, slots=True)
class Send:
    """Send `data` (the encoded `message`, MAC included when needed); the answer is the message
    with MTI `expect_mti` and STAN `stan`; report `on_timeout` after `timeout_ms` without one.
    The core's flows and the jobs both hand these to the driver."""

    message: Message
    data: bytes
    expect_mti: str
    stan: str
    timeout_ms: int


JobSend = Send  # one message of a job (several may be in flight)


@dataclass(frozen=True, slots=True)
class SettleStep:
    """One 0500 and its answer (rc None: none came)."""

    batch: int
    processing: str  # 920000, or 960000 after a detail upload
    rc: str | None
    totals: protocol.BatchTotals


@dataclass(frozen=True, slots=True)
class JobResult:
    kind: str
    rc: str  # 00: all done; else why the job stopped (91: something left for the next attempt)
    message: str  # for the screen, in Bahasa Indonesia
    batches_settled: tuple[int, ...] = ()
    steps: tuple[SettleStep, ...] = ()
    reversals_sent: int = 0
    reversals_left: int = 0
    advices_sent: int = 0
    advices_approved: int = 0
    advices_left: int = 0
    uploads_retried: int = 0  # advices sent again after an earlier attempt without a definite answer
    details_sent: int = 0
    exceptions: tuple[AdviceException, ...] = ()
    open_batch: int = 0

    @property
    def approved(self) -> bool:
        return self.rc == rc_table.APPROVED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the CLI prints it)."""
        data = asdict(self)
        data["steps"] = [
            {"batch": s.batch, "processing": s.processing, "rc": s.rc, "totals": asdict(s.totals)} for s in self.steps
        ]
        data["exceptions"] = [{**asdict(e), "at": e.at.isoformat(timespec="seconds")} for e in self.exceptions]
        data["batches_settled"] = list(self.batches_settled)
        return data


@dataclass
class _Item:
    kind: str  # "reversal", "advice", "detail", "settle"
    message: Message
    timeout_ms: int
    txn_id: int | None = None
    attempts: int = 0  # earlier attempts (advices)
    batch: BatchInfo | None = None
    totals: protocol.BatchTotals | None = None
    advice_batch: int | None = None  # an advice's batch number
    early: bool = False  # a settlement sent while advices upload

    @property
    def key(self) -> tuple[str, str]:
        return response_mti(self.message["t"])[:3], self.message["11"]


@dataclass
class _Tally:
    reversals_sent: int = 0
    reversals_left: int = 0
    advices_sent: int = 0
    advices_approved: int = 0
    advices_left: int = 0
    uploads_retried: int = 0
    details_sent: int = 0
    details_missing: int = 0
    settled: list[int] = field(default_factory=list)
    steps: list[SettleStep] = field(default_factory=list)
    exceptions: dict[tuple[int, str], AdviceException] = field(default_factory=dict)


class _Early:
    """The sealed batches a settlement job settles while later batches' advices upload: the
    oldest one is ready once every advice of it and of the batches before it has a definite
    answer (advices load oldest first, so a batch is whole once a later batch's advice loaded)."""

    def __init__(self, unsettled: list[BatchInfo]) -> None:
        self._order = {b.number: i for i, b in enumerate(unsettled)}  # oldest first
        self.sealed: deque[BatchInfo] = deque(b for b in unsettled if b.state == "sealed")
        self.on = bool(self.sealed)
        self.flying = False
        self._pending: Counter[int] = Counter()  # loaded advices without a definite answer, per batch number
        self._loaded_index = -1  # the latest batch with an advice loaded (its place in the order)
        self._left_index: int | None = None  # the earliest batch with an advice left unanswered

    def loaded(self, batch_number: int) -> None:
        index = self._order.get(batch_number)
        if index is None:  # an advice outside the unsettled batches: leave it all to step 3
            self.on = False
            return
        self._pending[batch_number] += 1
        self._loaded_index = max(self._loaded_index, index)

    def answered(self, batch_number: int, definite: bool) -> None:
        self._pending[batch_number] -= 1
        if not definite:
            index = self._order.get(batch_number, -1)
            self._left_index = index if self._left_index is None else min(self._left_index, index)

    def ready(self, all_loaded: bool) -> BatchInfo | None:
        """The sealed batch to settle now, or None."""
        if not self.on or self.flying or not self.sealed:
            return None
        head = self.sealed[0]
        index = self._order[head.number]
        whole = all_loaded or self._loaded_index > index
        if self._pending[head.number] or not whole or (self._left_index is not None and self._left_index <= index):
            return None
        return head


class BatchJob:
    """One upload or settlement run. Not thread-safe: drive it from one task."""

    def __init__(
        self,
        host: JobHost,
        store: BatchStore,
        kind: JobKind,
        timeout_ms: int,
        reversal_timeout_ms: int | None = None,
    ) -> None:
        self.kind = kind
        self._host = host
        self._store = store
        self._timeout_ms = timeout_ms
        self._reversal_timeout_ms = reversal_timeout_ms or timeout_ms
        self._phase = Phase.REVERSALS
        self._queue: deque[_Item] = deque()
        self._flying: dict[tuple[str, str], _Item] = {}
        self._advice_cursor = 0
        self._advices_exhausted = False
        self._batches: deque[BatchInfo] = deque()
        self._early: _Early | None = None  # settlement jobs, from step 2 on
        self._tally = _Tally()
        self._answers: list[AdviceAnswer] = []  # definite advice answers not stored yet
        self._result: JobResult | None = None
        self._queue.extend(_Item("reversal", m, self._reversal_timeout_ms) for m in host.pending_reversals())
        self._settle_if_idle()

    # -- what the driver sees ----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> JobResult | None:
        return self._result

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def in_flight(self) -> int:
        return len(self._flying)

    def poll(self, capacity: int) -> list[JobSend]:
        """Up to `capacity` messages to send now (none while a step waits for its answers)."""
        if self._answers and self._host.now() - self._answers[0].at >= timedelta(milliseconds=ANSWERS_HELD_MS):
            self._store_answers()
        out: list[JobSend] = []
        while self._result is None and len(out) < capacity:
            item = self._next_item()
            if item is None:
                break
            self._flying[item.key] = item
            out.append(self._send(item))
        return out

    def on_response(self, message: Message, raw: bytes) -> None:
        """An answer arrived (`message` decoded from `raw`). Unknown answers are ignored."""
        key = (str(message.get("t", ""))[:3], str(message.get("11", "")))
        item = self._flying.get(key)
        if item is None or self._result is not None:
            return
        del self._flying[key]
        self._host.link(True)
        if message.get("t") != response_mti(item.message["t"]) or not self._host.mac_ok(message, raw):
            self._no_answer(item)  # our STAN under another MTI, or a bad MAC: no valid answer
        else:
            self._answered(item, message)
        self._settle_if_idle()

    def on_timeout(self, send: JobSend) -> None:
        """No answer to `send` within its timeout (or the link failed)."""
        item = self._flying.pop((send.expect_mti[:3], send.stan), None)
        if item is None or self._result is not None:
            return
        self._host.link(False)
        self._no_answer(item)
        self._settle_if_idle()

    # -- sending -----------------------------------------------------------------------------------

    def _send(self, item: _Item) -> JobSend:
        message = item.message
        return JobSend(message, self._host.encode(message), response_mti(message["t"]), message["11"], item.timeout_ms)

    def _next_item(self) -> _Item | None:
        if not self._queue and self._phase is Phase.ADVICES:
            self._load_advices()
        if not self._queue:
            return None
        item = self._queue[0]
        if item.key in self._flying:
            return None  # the same (MTI class, STAN) is awaiting its answer: send after it
        return self._queue.popleft()

    def _load_advices(self) -> None:
        if self._advices_exhausted:
            return
        page = self._store.pending_advices(self._advice_cursor, ADVICES_PAGE_MAX)
        if len(page) < ADVICES_PAGE_MAX:
            self._advices_exhausted = True
        for advice in page:
            self._advice_cursor = advice.txn_id
            self._queue.append(_Item("advice", advice.message, self._timeout_ms, advice.txn_id, advice.attempts, advice_batch=advice.batch))
            if self._early is not None:
                self._early.loaded(advice.batch)
            if advice.attempts:
                self._tally.uploads_retried += 1

    # -- answers -----------------------------------------------------------------------------------

    def _answered(self, item: _Item, message: Message) -> None:
        rc = str(message.get("39", rc_table.FORMAT_ERROR))
        {"reversal": self._on_reversal, "advice": self._on_advice, "detail": self._on_detail, "settle": self._on_settle}[
            item.kind
        ](item, rc, message)

    def _store_answers(self) -> None:
        if self._answers:
            self._store.record_advice_answers(self._answers)
            self._answers = []

    def _no_answer(self, item: _Item) -> None:
        self._store_answers()  # in the order they came
        if item.kind == "reversal":
            self._tally.reversals_left += 1
        elif item.kind == "advice":
            self._store.record_answer(item.txn_id or 0, ADVICE, None, None, self._host.now())
            self._advice_done(item, definite=False)
            self._tally.advices_left += 1
        elif item.kind == "detail":
            self._store.record_answer(item.txn_id or 0, UPLOAD, None, None, self._host.now())
            self._tally.details_missing += 1
        else:
            self._on_settle(item, None, None)

    def _on_reversal(self, item: _Item, rc: str, message: Message) -> None:
        if rc in REVERSAL_RETRY_RCS:
            self._tally.reversals_left += 1
            return
        self._host.reversal_answered(item.message["11"], rc, message)
        self._tally.reversals_sent += 1

    def _on_advice(self, item: _Item, rc: str, message: Message) -> None:
        if is_definite(rc):
            self._answers.append(AdviceAnswer(item.txn_id or 0, rc, message, self._host.now()))
            if len(self._answers) >= ANSWERS_HELD_MAX:
                self._store_answers()
            definite = True
        else:
            self._store_answers()
            definite = self._store.record_answer(item.txn_id or 0, ADVICE, rc, message, self._host.now())
        self._advice_done(item, definite)
        if not definite:
            self._tally.advices_left += 1
            return
        self._tally.advices_sent += 1
        if rc == rc_table.APPROVED:
            self._tally.advices_approved += 1

    def _on_detail(self, item: _Item, rc: str, message: Message) -> None:
        self._store_answers()
        self._store.record_answer(item.txn_id or 0, UPLOAD, rc, message, self._host.now())
        self._tally.details_sent += 1
        if rc != rc_table.APPROVED:
            self._tally.details_missing += 1

    def _advice_done(self, item: _Item, definite: bool) -> None:
        if self._early is not None and item.advice_batch is not None:
            self._early.answered(item.advice_batch, definite)

    def _on_settle(self, item: _Item, rc: str | None, message: Message | None) -> None:
        assert item.batch is not None and item.totals is not None
        processing = item.message["3"]
        self._store.record_settlement(item.batch.id, processing, rc, item.totals, self._host.now())
        if item.early:
            self._on_early_settle(item, rc)
            return
        self._tally.steps.append(SettleStep(item.batch.number, processing, rc, item.totals))
        if rc == rc_table.APPROVED:
            self._close(item.batch)
            self._batches.popleft()
            self._next_batch()
        elif rc == rc_table.RECONCILE_ERROR and processing == protocol.PROCESSING_SETTLEMENT:
            self._start_details(item.batch)
        elif rc is None:
            self._finish(rc_table.ISSUER_UNAVAILABLE, f"Settlement batch {item.batch.number:06d} tidak dijawab, ulangi nanti")
        else:
            text = rc_table.lookup(rc).text_id
            self._finish(rc, f"Settlement batch {item.batch.number:06d} ditolak: RC {rc} {text}")

    def _on_early_settle(self, item: _Item, rc: str | None) -> None:
        """00 closes the batch; anything else (a 95 too) ends early settlements: step 3 takes
        the batch from the start. Only a closing answer counts as a step of the result."""
        early = self._early
        assert early is not None and item.batch is not None and item.totals is not None
        early.flying = False
        if rc != rc_table.APPROVED:
            early.on = False
            return
        self._tally.steps.append(SettleStep(item.batch.number, item.message["3"], rc, item.totals))
        early.sealed.popleft()
        self._close(item.batch)

    # -- steps -------------------------------------------------------------------------------------

    def _settle_early(self) -> None:
        """Queue the next sealed batch's settlement ahead of the advices, when it is ready."""
        early = self._early
        if early is None or self._phase is not Phase.ADVICES or self._result is not None:
            return
        batch = early.ready(all_loaded=self._advices_exhausted)
        if batch is None:
            return
        early.flying = True
        self._store_answers()  # its totals count them
        self._queue.appendleft(self._settlement_item(batch, early=True))

    def _settle_if_idle(self) -> None:
        """When a step has no message left to send or to await, go to the next one."""
        self._settle_early()
        if not self._flying:
            self._store_answers()  # the next step reads the store (totals, exceptions)
        while self._result is None and not self._flying and not self._queue and self._step_exhausted():
            self._advance()

    def _step_exhausted(self) -> bool:
        if self._phase is Phase.ADVICES and not self._advices_exhausted:
            self._load_advices()
            return not self._queue
        return True

    def _advance(self) -> None:
        tally = self._tally
        if self._phase is Phase.REVERSALS:
            if tally.reversals_left and self.kind is JobKind.SETTLE:
                self._finish(rc_table.ISSUER_UNAVAILABLE, f"{tally.reversals_left} pembatalan belum terkirim: settlement ditunda")
                return
            self._phase = Phase.ADVICES
            if self.kind is JobKind.SETTLE:
                self._early = _Early(self._store.unsettled())
        elif self._phase is Phase.ADVICES:
            if tally.advices_left:
                left = tally.advices_left
                self._finish(rc_table.ISSUER_UNAVAILABLE, f"Upload belum selesai: {left} transaksi offline dikirim lagi nanti")
            elif self.kind is JobKind.UPLOAD:
                self._finish(rc_table.APPROVED, f"Upload selesai: {tally.advices_sent} transaksi offline terkirim")
            else:
                self._phase = Phase.SETTLE
                self._batches = deque(self._store.unsettled())
                self._next_batch()
        elif self._phase is Phase.DETAILS:
            batch = self._batches[0]
            if tally.details_missing:
                self._finish(rc_table.ISSUER_UNAVAILABLE, f"Upload detail batch {batch.number:06d} belum selesai, ulangi settlement")
                return
            self._phase = Phase.SETTLE
            self._queue_settlement(batch, after_upload=True)
        else:  # SETTLE with nothing queued: a handler already finished or queued the next step
            raise AssertionError(f"job idle in phase {self._phase}")

    def _next_batch(self) -> None:
        if not self._batches:
            settled = ", ".join(f"{n:06d}" for n in self._tally.settled) or "-"
            self._finish(rc_table.APPROVED, f"Settlement selesai: batch {settled} ditutup")
            return
        self._queue_settlement(self._batches[0])

    def _queue_settlement(self, batch: BatchInfo, after_upload: bool = False) -> None:
        self._queue.append(self._settlement_item(batch, after_upload))

    def _settlement_item(self, batch: BatchInfo, after_upload: bool = False, early: bool = False) -> _Item:
        totals = self._store.totals(batch.id)
        message = protocol.settlement_request(
            self._host.terminal, self._host.next_stan(), self._host.now(), batch.number, totals, after_upload
        )
        return _Item("settle", message, self._timeout_ms, batch=batch, totals=totals, early=early)

    def _start_details(self, batch: BatchInfo) -> None:
        self._phase = Phase.DETAILS
        self._tally.details_missing = 0
        for txn_id, original in self._store.details(batch.id):
            upload = protocol.batch_upload_request(original, batch.number)
            self._queue.append(_Item("detail", upload, self._timeout_ms, txn_id))

    def _close(self, batch: BatchInfo) -> None:
        open_batch = self._store.close_batch(batch.id, self._host.now())
        self._tally.settled.append(batch.number)
        for exception in self._store.exceptions(batch.number):
            self._tally.exceptions[(exception.batch, exception.stan)] = exception
        self._host.batch_closed(batch.number, open_batch)

    def _finish(self, rc: str, message: str) -> None:
        tally = self._tally
        for exception in self._store.exceptions(unsettled_only=True):  # still in an open or sealed batch
            tally.exceptions.setdefault((exception.batch, exception.stan), exception)
        self._phase = Phase.DONE
        self._queue.clear()
        self._result = JobResult(
            kind=str(self.kind),
            rc=rc,
            message=message,
            batches_settled=tuple(tally.settled),
            steps=tuple(tally.steps),
            reversals_sent=tally.reversals_sent,
            reversals_left=tally.reversals_left,
            advices_sent=tally.advices_sent,
            advices_approved=tally.advices_approved,
            advices_left=tally.advices_left,
            uploads_retried=tally.uploads_retried,
            details_sent=tally.details_sent,
            exceptions=tuple(tally.exceptions.values()),
            open_batch=self._store.open_batch().number,
        )
        self._host.finished(self._result)
