"""Terminal batches at the switch: settlement (0500) and batch upload (0320).

DESIGN.md, "Batches, as on bank EDCs": a terminal closes its batch with a 0500 (processing code
920000) carrying its totals in field 63. The switch sums the same batch from its journal
(approved purchases and advices; approved reversals of approved ones, once per original, for the
original's amount) and

- equal totals: 00, the batch is closed (a `settlements` row with rc 00);
- different totals: 95 with the switch's totals in field 63 (an attempt row with rc 95); the
  terminal then details every transaction as a 0320 and closes with 960000, answered 00 whatever
  the totals (the row keeps both: reconciliation shows the differences);
- a batch already closed: the same totals again are answered 00 (a lost 0510 is retried; not
  recorded again), other totals 94 (recorded); a batch lower than the terminal's last closed one
  that never closed is answered 12: a batch cannot reopen. A 0320 for a closed batch is 12 too.

A 0320 is recorded once (`batch_uploads`). When it details an offline sale the switch never
journalled with a bank answer, the core forwards it to the bank as the advice (see
`SwitchCore._upload`); nothing else is ever posted from a 0320.

The decisions are pure functions (`decide_settlement`, `upload_refusal`); `Batches` reads and
appends the journal off the event loop and takes one lock per terminal, so two settlements of
one terminal never decide on the same state. Lookups of single transactions (`journalled`) asked
for while one is out are answered together by the next query (`JournalLookups`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from shared import iso8583, protocol, rc
from shared.cards import mask_pan
from shared.iso8583 import Message, MessageError
from shared.protocol import BatchTotals

from switch.journal import Journal, SettlementRecord, TransactionKey, TransactionRecord, UploadRecord
from switch.tables import UPLOADED_MTIS

log = logging.getLogger("switch.batches")

SETTLE = protocol.PROCESSING_SETTLEMENT
SETTLE_AFTER_UPLOAD = protocol.PROCESSING_SETTLEMENT_AFTER_UPLOAD
BATCH_FIELD_LENGTH = 6
# Fields an upload needs beyond the common ones, by the original's MTI.
UPLOAD_NEEDS = {iso8583.ADVICE: ("12", "13"), iso8583.REVERSAL: ("90",)}
# The fields of a 0320 that make the original 0220 again (62 names it; 37 and 39 are answers).
_NOT_ADVICE_FIELDS = ("62", "37", "39", "90", "64", "128")
CATCH_UP_TIMEOUT_MS = 3_000
CATCH_UP_POLL_MS = 10
LOOKUP_KEYS_MAX = 256  # transaction keys one journal query looks up


# -- reading the messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlementRequest:
    processing_code: str  # 920000 | 960000 (anything else is answered 12)
    batch: int
    totals: BatchTotals  # the terminal's, from field 63


def parse_batch(text: str) -> int:
    """Field 60 of a 0500 or 0320: the batch, 6 digits from 000001; MessageError otherwise."""
    if len(text) != BATCH_FIELD_LENGTH or not text.isdigit() or not 1 <= int(text) <= protocol.BATCH_MAX:
        raise MessageError(f"field 60 must be a batch number 000001-{protocol.BATCH_MAX:06d}, got {text!r}")
    return int(text)


def batch_of(doc: Message) -> int | None:
    """The batch a financial request carries in field 60, for the journal; None without a readable one."""
    try:
        return parse_batch(str(doc["60"])) if "60" in doc else None
    except MessageError:
        return None


def parse_settlement(doc: Message) -> SettlementRequest:
    """A 0500's processing code, batch and totals; MessageError (answered 30) when malformed."""
    totals = protocol.parse_totals_field(str(doc["63"]))
    if problem := totals.overflow():  # 30 digits always fit; kept for any other source of totals
        raise MessageError(f"field 63: {problem}")
    return SettlementRequest(str(doc["3"]), parse_batch(str(doc["60"])), totals)


def parse_upload(doc: Message, tid: str, day: date, at: datetime) -> UploadRecord:
    """The transaction a 0320 details, as recorded; MessageError (answered 30) when malformed.
    `day` is the date of its field 7 (the original's transmission date)."""
    original_mti = str(doc["62"])
    if original_mti not in UPLOADED_MTIS:
        raise MessageError(f"field 62 must be the original MTI, one of {', '.join(UPLOADED_MTIS)}, got {original_mti!r}")
    missing = [f for f in UPLOAD_NEEDS.get(original_mti, ()) if f not in doc]
    if missing:
        raise MessageError(f"a batch upload of a {original_mti} needs fields {', '.join(missing)}")
    original_stan, original_date = None, None
    if original_mti == iso8583.REVERSAL:
        _, original_stan, original_f7 = protocol.parse_original_data(str(doc["90"]))
        original_date = protocol.transmission_date(original_f7, day)
    return UploadRecord(
        tid=tid,
        batch=parse_batch(str(doc["60"])),
        stan=str(doc["11"]),
        original_mti=original_mti,
        pan_masked=mask_pan(str(doc["2"])),
        amount_idr=protocol.amount_idr(doc),
        approval_code=str(doc["38"]) if "38" in doc else None,
        rrn=str(doc["37"]) if "37" in doc else None,
        transmission_date=day,
        transmitted_at=_transmitted_at(str(doc["7"]), day),
        original_stan=original_stan,
        original_date=original_date,
        at=at,
    )


def _transmitted_at(field7: str, day: date) -> datetime:
    try:
        clock = protocol.time_of_day(field7[4:])
    except ValueError:
        raise MessageError(f"field 7 must be MMDDhhmmss, got {field7!r}") from None
    return datetime.combine(day, clock)


def advice_of_upload(doc: Message) -> Message:
    """The 0220 a 0320 of an offline sale details: the same fields, so that the bank sees the
    very request the terminal's own 0220 makes (same key and body: it posts once)."""
    return {**{k: v for k, v in doc.items() if k not in _NOT_ADVICE_FIELDS}, "t": iso8583.ADVICE}


# -- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to answer a 0500, and whether the decision is recorded in `settlements`."""

    rc: str
    record: bool = False
    answer_totals: BatchTotals | None = None  # the switch's totals, in field 63 of a 95


def decide_settlement(
    request: SettlementRequest, switch: BatchTotals, closing: SettlementRecord | None, last_closed: int | None
) -> Verdict:
    """The answer to a settlement, from the switch's totals of the batch, the settlement that
    closed it (None while open) and the terminal's highest closed batch (None if none)."""
    if request.processing_code not in (SETTLE, SETTLE_AFTER_UPLOAD):
        return Verdict(rc.INVALID_TRANSACTION)
    if closing is not None:
        if request.totals == closing.terminal:
            return Verdict(rc.APPROVED)  # a repeat (the 0510 was lost): the same answer, once recorded
        return Verdict(rc.DUPLICATE, record=True)
    if last_closed is not None and request.batch < last_closed:
        return Verdict(rc.INVALID_TRANSACTION)  # an unknown batch: a batch cannot reopen
    if request.processing_code == SETTLE_AFTER_UPLOAD or request.totals == switch:
        return Verdict(rc.APPROVED, record=True)
    return Verdict(rc.RECONCILE_ERROR, record=True, answer_totals=switch)


def upload_refusal(batch: int, closed: bool, last_closed: int | None) -> str | None:
    """12 for a 0320 of a closed batch, or of one lower than the last closed (it cannot
    reopen); None when the upload may be recorded."""
    if closed or (last_closed is not None and batch < last_closed):
        return rc.INVALID_TRANSACTION
    return None


def settlement_fields(verdict: Verdict) -> dict[str, str]:
    """Field 63 of the answer: the switch's totals with a 95 (left out when they do not fit)."""
    if verdict.answer_totals is None:
        return {}
    try:
        return {"63": protocol.totals_field(verdict.answer_totals)}
    except ValueError as exc:
        log.warning("switch totals left out of a 95: %s", exc)
        return {}


# -- the journal side ---------------------------------------------------------------------------


class JournalLookups:
    """Journal lookups of transactions by key, coalesced: the lookups asked for while a query is
    out wait for the next query, which answers up to LOOKUP_KEYS_MAX keys at once. An upload of
    many advices then costs one query and one thread hop per round of them, not one per advice.
    A lookup asked for after a row was committed always sees it (the query starts later)."""

    def __init__(self, journal: Journal, keys_max: int = LOOKUP_KEYS_MAX) -> None:
        assert keys_max >= 1
        self.journal = journal
        self.keys_max = keys_max
        self.queries = 0  # how many queries answered the lookups so far
        self._waiting: dict[TransactionKey, list[asyncio.Future]] = {}  # bounded by requests in flight
        self._task: asyncio.Task | None = None

    async def find(self, key: TransactionKey) -> TransactionRecord | None:
        future: asyncio.Future[TransactionRecord | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            keys = list(itertools.islice(self._waiting, self.keys_max))
            waiting = [self._waiting.pop(key) for key in keys]
            try:
                found = await asyncio.to_thread(self.journal.find_many, keys)
            except BaseException as exc:  # each waiting lookup fails as its own query would have
                for future in itertools.chain.from_iterable(waiting):
                    _settle(future, exc=exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            finally:
                self.queries += 1
            for key, futures in zip(keys, waiting, strict=True):
                for future in futures:
                    _settle(future, found.get(key))


def _settle(future: asyncio.Future, result: object = None, exc: BaseException | None = None) -> None:
    if future.done():  # its caller gave up waiting (cancelled)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class Batches:
    """Settlement and upload decisions on the journal, one terminal at a time.

    Journal writes of transactions are queued (`switch.journal_writer`): before summing a batch,
    `caught_up` waits (bounded) until the terminal's last transaction row is in the database."""

    def __init__(
        self,
        journal: Journal,
        now: Callable[[], datetime],
        catch_up_timeout_ms: int = CATCH_UP_TIMEOUT_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.now = now
        self.catch_up_timeout_ms = catch_up_timeout_ms
        self._monotonic = monotonic
        self._locks: dict[str, asyncio.Lock] = {}  # one per known terminal: bounded
        self.lookups = JournalLookups(journal)

    def _lock(self, tid: str) -> asyncio.Lock:
        return self._locks.setdefault(tid, asyncio.Lock())

    async def caught_up(self, key: tuple | None) -> bool:
        """Wait until the transaction row with `key` (tid, stan, date, kind) is in the journal,
        at most `catch_up_timeout_ms`; False (logged) when it did not come."""
        if key is None:
            return True
        deadline = self._monotonic() + self.catch_up_timeout_ms / 1000
        while await self.lookups.find(key) is None:
            if self._monotonic() >= deadline:
                log.warning("journal behind: %s stan %s not written within %d ms; summing what is there", key[0], key[1], self.catch_up_timeout_ms)
                return False
            await asyncio.sleep(CATCH_UP_POLL_MS / 1000)
        return True

    def _settlement_state(self, tid: str, batch: int) -> tuple[BatchTotals, SettlementRecord | None, int | None]:
        closing = self.journal.closing_settlement(tid, batch)
        last_closed = self.journal.last_closed_batch(tid) if closing is None else None
        return self.journal.batch_totals(tid, batch), closing, last_closed

    async def settle(self, tid: str, stan: str, request: SettlementRequest) -> tuple[str, dict[str, str]]:
        """(response code, extra answer fields) for a 0500 of `tid`, recorded when it decides."""
        async with self._lock(tid):
            switch, closing, last_closed = await asyncio.to_thread(self._settlement_state, tid, request.batch)
            verdict = decide_settlement(request, switch, closing, last_closed)
            if verdict.record:
                record = SettlementRecord(
                    tid, request.batch, stan, request.processing_code, request.totals, switch, verdict.rc, self.now()
                )
                await asyncio.to_thread(self.journal.record_settlement, record)
        log.info("settlement %s batch %06d: %s (terminal %s, switch %s)", tid, request.batch, verdict.rc, request.totals, switch)
        return verdict.rc, settlement_fields(verdict)

    def _upload_state(self, tid: str, batch: int) -> tuple[bool, int | None]:
        return self.journal.closing_settlement(tid, batch) is not None, self.journal.last_closed_batch(tid)

    async def upload_refusal(self, tid: str, batch: int) -> str | None:
        closed, last_closed = await asyncio.to_thread(self._upload_state, tid, batch)
        return upload_refusal(batch, closed, last_closed)

    async def record_upload(self, upload: UploadRecord) -> str:
        """Record a detailed transaction once: 00, or 12 when its batch closed meanwhile."""
        async with self._lock(upload.tid):
            refused = await self.upload_refusal(upload.tid, upload.batch)
            if refused:
                return refused
            await asyncio.to_thread(self.journal.record_upload, upload)
        return rc.APPROVED

    async def journalled(self, tid: str, stan: str, day: date, kind: str) -> TransactionRecord | None:
        """The transaction of `kind` journalled under (tid, STAN, date), None when there is none."""
        return await self.lookups.find((tid, stan, day, kind))
