"""The switch journal: terminals and their keys, every transaction and message, SAF reversals,
and the terminals' batches (settlement decisions and batch uploads).

The journal is the switch's own database and is append-only. `record()` is the hot path (fed in
batches by the journal writer): its statements are built once here, and a batch is written in
one database transaction with executemany. A transaction already journalled under the same key
(terminal, STAN, transmission date, kind) is skipped with ON CONFLICT DO NOTHING.

Settlement decisions and batch uploads are written one at a time, synchronously (they are rare
and the terminal must not hear 00 before they are stored), see `record_settlement` and
`record_upload`; `batch_totals` sums a batch as settlement counts it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from datetime import date, datetime

import orjson
import psycopg
from sqlalchemy import Connection, Row, Select, bindparam, func, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.db import Database
from shared.protocol import BatchTotals
from shared.rc import APPROVED
from switch import migrate
from shared.cards import mask_pan
from switch.hsm import PanCipher, PanHasher, PanSealError
from switch.tables import (
    ACK,
    ADVICE,
    CLOSED,
    ERROR,
    OUTCOMES,
    PURCHASE,
    REVERSAL,
    BatchUpload,
    MessageLog,
    SafAttempt,
    SafCancellation,
    SafEntryRow,
    Settlement,
    Terminal,
    TerminalKey,
    Transaction,
)


@dataclass(frozen=True, slots=True)
class TerminalRecord:
    tid: str  # 8 chars, e.g. "BNI00001"
    mid: str  # 15 chars e-Warong id, e.g. "EWBNI0000000001"
    bank_code: str  # acquiring bank: bni|bri|mandiri|btn
    name: str
    tmk_lmk: str  # terminal master key wrapped under the switch LMK, hex (32)


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    rrn: str  # 12 chars, unique
    tid: str
    mid: str
    stan: str  # 6 digits
    transmission_date: date
    mti: str  # request MTI: "0100" | "0200" | "0220" | "0400" | "0401"; "0320" for an advice forwarded from a batch upload
    kind: str  # "inquiry" | "purchase" | "advice" | "reversal"
    pan_masked: str  # first 6 / last 4 (never a full PAN in the journal)
    bank_code: str | None  # issuer the request was routed to (None when refused before routing)
    amount_idr: int
    rc: str
    approval_code: str | None
    balance_idr: int | None
    request_hash: str  # sha256 hex of the request (duplicate detection)
    response: dict  # the response fields (text values) for replaying a duplicate, without MAC
    original_rrn: str | None  # for reversals: the RRN of the reversed purchase (None if unknown)
    bank_latency_ms: int | None
    created_at: datetime
    # Search key of the card: `SwitchHsm.pan_hash` of the full PAN (None when there was none).
    pan_hash: str | None = None
    # The terminal's batch: field 60 of the request (None when it carried no readable one).
    batch: int | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    rrn: str | None
    tid: str
    stan: str
    mti: str
    direction: str  # "terminal_in" | "terminal_out" | "bank_out" | "bank_in"
    rc: str | None
    fields: dict  # already masked by the caller (PAN masked, no PIN block, no MAC)
    at: datetime


@dataclass(frozen=True, slots=True)
class SafEntry:
    id: int
    rrn: str
    bank_code: str
    body: dict  # the JSON body of the bank reversal request, with the full PAN (opened in memory)
    created_at: datetime
    attempts: int
    last_error: str | None
    # False when the sealed card number did not open (another PAN key): `body` then holds it
    # masked, and the entry cannot be delivered.
    card_readable: bool = True


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    """One settlement decision about a batch (see `switch.batches`)."""

    tid: str
    batch: int
    stan: str
    processing_code: str  # 920000 | 960000
    terminal: BatchTotals  # as the terminal reported them in field 63
    switch: BatchTotals  # as the journal sums the batch
    rc: str  # 00 closed | 95 totals differ | 94 other totals for a closed batch
    at: datetime


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """A transaction of a batch as a terminal detailed it in a batch upload (0320)."""

    tid: str
    batch: int
    stan: str
    original_mti: str  # 0200 | 0220 | 0400
    pan_masked: str
    amount_idr: int
    approval_code: str | None
    rrn: str | None
    transmission_date: date
    transmitted_at: datetime
    original_stan: str | None  # a reversal's purchase (field 90)
    original_date: date | None
    at: datetime


TRANSACTION_FIELDS = tuple(f.name for f in fields(TransactionRecord))
UPLOAD_FIELDS = tuple(f.name for f in fields(UploadRecord))
_TOTALS_FIELDS = tuple(f.name for f in fields(BatchTotals))
MESSAGE_FIELDS = tuple(f.name for f in fields(MessageRecord))
_transaction_values = attrgetter(*TRANSACTION_FIELDS)  # a record's values, in the order of the fields
_message_values = attrgetter(*MESSAGE_FIELDS)
TERMINAL_FIELDS = tuple(f.name for f in fields(TerminalRecord))

_transactions = Transaction.__table__
_terminals = Terminal.__table__
_keys = TerminalKey.__table__
_saf = SafEntryRow.__table__
_attempts = SafAttempt.__table__
_cancels = SafCancellation.__table__
_settlements = Settlement.__table__
_uploads = BatchUpload.__table__
SPENDING = (PURCHASE, ADVICE)

# -- statements, built once ---------------------------------------------------------------------

_INSERT_TRANSACTIONS = {
    # No conflict target: a row whose key (or RRN) is already journalled is skipped, never an
    # error that would lose the rest of the batch.
    "postgresql": postgresql_insert(_transactions).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(_transactions).on_conflict_do_nothing(),
}
_INSERT_MESSAGES = insert(MessageLog.__table__)
# PostgreSQL takes the message trail (four rows per purchase, append-only) by COPY: one
# statement per batch, a fraction of the CPU of one INSERT per row.
_COPY_MESSAGES = f"COPY {MessageLog.__tablename__} ({', '.join(MESSAGE_FIELDS)}) FROM STDIN"
_JSON_FIELD = MESSAGE_FIELDS.index("fields")
_INSERT_TERMINALS = insert(_terminals)
_INSERT_KEYS = insert(_keys)
_INSERT_SAF = insert(_saf).returning(_saf.c.id)
_INSERT_ATTEMPT = insert(_attempts)

# A transaction by its key (tid, stan, day, kind); also what switch.workers waits on across processes.
FIND_TRANSACTION = select(*(_transactions.c[name] for name in TRANSACTION_FIELDS)).where(
    _transactions.c.tid == bindparam("tid"),
    _transactions.c.stan == bindparam("stan"),
    _transactions.c.transmission_date == bindparam("day"),
    _transactions.c.kind == bindparam("kind"),
)
_MAX_RRN = select(func.max(_transactions.c.rrn))
TransactionKey = tuple[str, str, date, str]  # (tid, stan, transmission_date, kind): unique
_KEY_COLUMNS = tuple_(_transactions.c.tid, _transactions.c.stan, _transactions.c.transmission_date, _transactions.c.kind)
_FIND_TRANSACTIONS = select(*(_transactions.c[name] for name in TRANSACTION_FIELDS)).where(
    _KEY_COLUMNS.in_(bindparam("keys", expanding=True))
)

# -- batches: the totals settlement compares (the definitions of switch/ops/routes/settlement.py,
# per terminal and batch instead of per bank and day) ----------------------------------------------


def batch_totals_queries(tids: Collection[str], batches: Collection[int]) -> tuple[Select, Select]:
    """Two grouped queries, rows (tid, batch, count, amount), for every (terminal, batch) among
    `tids` x `batches`: approved purchases and advices; approved reversals of those, once per
    original and for the original's amount (the bank gives the whole purchase back)."""
    t = _transactions
    sales = (
        select(t.c.tid, t.c.batch, func.count(), func.coalesce(func.sum(t.c.amount_idr), 0))
        .where(t.c.tid.in_(tids), t.c.batch.in_(batches), t.c.kind.in_(SPENDING), t.c.rc == APPROVED)
        .group_by(t.c.tid, t.c.batch)
    )
    reversal, original, earlier = (t.alias(name) for name in ("reversal", "original", "earlier"))
    already_reversed = (
        select(earlier.c.id)
        .where(
            earlier.c.original_rrn == reversal.c.original_rrn,
            earlier.c.kind == REVERSAL,
            earlier.c.rc == APPROVED,
            earlier.c.id < reversal.c.id,
        )
        .exists()
    )
    reversals = (
        select(original.c.tid, original.c.batch, func.count(), func.coalesce(func.sum(original.c.amount_idr), 0))
        .select_from(reversal.join(original, original.c.rrn == reversal.c.original_rrn))
        .where(
            original.c.tid.in_(tids),
            original.c.batch.in_(batches),
            original.c.kind.in_(SPENDING),
            original.c.rc == APPROVED,
            reversal.c.kind == REVERSAL,
            reversal.c.rc == APPROVED,
            ~already_reversed,
        )
        .group_by(original.c.tid, original.c.batch)
    )
    return sales, reversals


def batch_totals_of(conn: Connection, tids: Collection[str], batches: Collection[int]) -> dict[tuple[str, int], BatchTotals]:
    """Settlement totals of every (terminal, batch) among `tids` x `batches` that has any."""
    sales, reversals = batch_totals_queries(tids, batches)
    sums: dict[tuple[str, int], list[int]] = {}
    for offset, query in ((0, sales), (2, reversals)):
        for tid, batch, count, amount in conn.execute(query):
            sums.setdefault((tid, batch), [0, 0, 0, 0])[offset : offset + 2] = [int(count), int(amount)]
    return {pair: BatchTotals(*values) for pair, values in sums.items()}


_CLOSING = select(_settlements).where(
    _settlements.c.tid == bindparam("tid"), _settlements.c.batch == bindparam("batch"), _settlements.c.rc == CLOSED
)
_LAST_CLOSED = select(func.max(_settlements.c.batch)).where(_settlements.c.tid == bindparam("tid"), _settlements.c.rc == CLOSED)
_INSERT_SETTLEMENT = insert(_settlements)
_INSERT_UPLOAD = {
    "postgresql": postgresql_insert(_uploads).on_conflict_do_nothing().returning(_uploads.c.id),
    "sqlite": sqlite_insert(_uploads).on_conflict_do_nothing().returning(_uploads.c.id),
}

_TERMINAL_COLUMNS = tuple(_terminals.c[name] for name in TERMINAL_FIELDS)
_TERMINAL = select(*_TERMINAL_COLUMNS).where(_terminals.c.tid == bindparam("tid"))
_TERMINALS = select(*_TERMINAL_COLUMNS).order_by(_terminals.c.tid)
_KNOWN_TIDS = select(_terminals.c.tid)

_KEYS_OF = select(_keys.c.tpk_lmk, _keys.c.tak_lmk).where(_keys.c.tid == bindparam("tid")).order_by(_keys.c.id.desc()).limit(1)
_LATEST_KEYS = select(_keys.c.tid, _keys.c.tpk_lmk, _keys.c.tak_lmk).where(
    _keys.c.id.in_(select(func.max(_keys.c.id)).group_by(_keys.c.tid))
)


def saf_attempt_count():  # noqa: ANN201
    """Scalar subquery: how many delivery attempts a SAF entry has had."""
    return select(func.count(_attempts.c.id)).where(_attempts.c.saf_id == _saf.c.id).scalar_subquery()


def saf_last_error():  # noqa: ANN201
    """Scalar subquery: the detail of a SAF entry's latest failed attempt."""
    return (
        select(_attempts.c.detail)
        .where(_attempts.c.saf_id == _saf.c.id, _attempts.c.outcome == ERROR)
        .order_by(_attempts.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def saf_acked():  # noqa: ANN201
    """EXISTS: the bank has acknowledged this SAF entry."""
    return select(_attempts.c.id).where(_attempts.c.saf_id == _saf.c.id, _attempts.c.outcome == ACK).exists()


def saf_cancelled():  # noqa: ANN201
    """EXISTS: operations staff cancelled this SAF entry (`switch.controls`)."""
    return select(_cancels.c.saf_id).where(_cancels.c.saf_id == _saf.c.id).exists()


# The reversals still owed to banks, oldest first (switch.workers narrows it to its leased ids).
PENDING_SAF = (
    select(
        _saf.c.id,
        _saf.c.rrn,
        _saf.c.bank_code,
        _saf.c.body,
        _saf.c.pan_sealed,
        _saf.c.created_at,
        saf_attempt_count().label("attempts"),
        saf_last_error().label("last_error"),
    )
    .where(~saf_acked(), ~saf_cancelled())
    .order_by(_saf.c.id)
    .limit(bindparam("limit"))
)


def totals_of(row: Row, side: str) -> BatchTotals:
    """The terminal's or the switch's totals (`side`) of a `settlements` row."""
    return BatchTotals(*(int(getattr(row, f"{side}_{name}")) for name in _TOTALS_FIELDS))


def settlement_from_row(row: Row) -> SettlementRecord:
    return SettlementRecord(
        row.tid, row.batch, row.stan, row.processing_code, totals_of(row, "terminal"), totals_of(row, "switch"), row.rc, row.at
    )


def _copy_messages(conn: Connection, messages: Sequence[MessageRecord]) -> None:
    """Append `messages` inside `conn`'s transaction with COPY (PostgreSQL; the table is found
    on the connection's search path, the journal's schema)."""
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY_MESSAGES) as copy:
            for message in messages:
                row = list(_message_values(message))
                row[_JSON_FIELD] = orjson.dumps(row[_JSON_FIELD], option=orjson.OPT_NON_STR_KEYS).decode()
                copy.write_row(row)
    except psycopg.Error as exc:  # as SQLAlchemy reports it for its own statements (IntegrityError, ...)
        raise DBAPIError.instance(_COPY_MESSAGES, None, exc, psycopg.Error) from exc


def transaction_from_row(row: Row) -> TransactionRecord:
    mapping = row._mapping
    return TransactionRecord(**{name: mapping[name] for name in TRANSACTION_FIELDS})


def saf_context(rrn: str) -> str:
    """The associated data a SAF entry's card number is sealed with: it opens only on its row."""
    return f"saf/{rrn}"


def saf_entry_from_row(row: Row, cipher: PanCipher) -> SafEntry:
    body, readable = dict(row.body), True
    if "pan" in body:
        try:
            body["pan"] = cipher.open(row.pan_sealed, saf_context(row.rrn))
        except PanSealError:
            readable = False
    return SafEntry(
        id=row.id,
        rrn=row.rrn,
        bank_code=row.bank_code,
        body=body,
        created_at=row.created_at,
        attempts=int(row.attempts),
        last_error=row.last_error,
        card_readable=readable,
    )


class Journal:
    """Reads and appends on the switch's database (an SQLite file or a PostgreSQL schema).

    `pan_hash` makes the search key of a card number; it must be the one the rows were written
    with (`SwitchHsm.pan_hash`: the same PAN hash key). `pan_cipher` seals the card numbers of
    stored reversals (`SwitchHsm.pan_cipher`: the PAN key); both default to the demo keys."""

    def __init__(self, db: Database, pan_hash: PanHasher | None = None, pan_cipher: PanCipher | None = None) -> None:
        self.db = db
        self.pan_hash = pan_hash or PanHasher()
        self.pan_cipher = pan_cipher or PanCipher()
        self._insert_transactions = _INSERT_TRANSACTIONS[db.dialect]
        self._insert_upload = _INSERT_UPLOAD[db.dialect]

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic upgrade head); card numbers found in
        clear in older rows are sealed under this journal's PAN key."""
        migrate.upgrade(self.db, pan_key_hex=self.pan_cipher.key_hex)

    # -- terminals and keys ---------------------------------------------------------------------

    def ensure_terminals(self, records: Sequence[TerminalRecord], at: datetime) -> int:
        """Register the terminals not known yet (a known one is left as it is); returns how many."""
        with self.db.begin() as conn:
            known = set(conn.execute(_KNOWN_TIDS).scalars())
            rows: dict[str, dict] = {}
            for record in records:
                if record.tid not in known and record.tid not in rows:
                    rows[record.tid] = {**{n: getattr(record, n) for n in TERMINAL_FIELDS}, "registered_at": at}
            if rows:
                conn.execute(_INSERT_TERMINALS, list(rows.values()))
        return len(rows)

    def terminal(self, tid: str) -> TerminalRecord | None:
        with self.db.read() as conn:
            row = conn.execute(_TERMINAL, {"tid": tid}).one_or_none()
        return TerminalRecord(*row) if row is not None else None

    def terminals(self) -> list[TerminalRecord]:
        with self.db.read() as conn:
            return [TerminalRecord(*row) for row in conn.execute(_TERMINALS)]

    def append_working_keys(self, tid: str, tpk_lmk: str, tak_lmk: str, at: datetime) -> None:
        """Record a key exchange of a registered terminal; older rows stay as history."""
        with self.db.begin() as conn:
            conn.execute(_INSERT_KEYS, {"tid": tid, "tpk_lmk": tpk_lmk, "tak_lmk": tak_lmk, "at": at})

    def latest_working_keys(self) -> dict[str, tuple[str, str]]:
        """tid -> (TPK, TAK) under the LMK, from each terminal's newest key exchange."""
        with self.db.read() as conn:
            return {tid: (tpk, tak) for tid, tpk, tak in conn.execute(_LATEST_KEYS)}

    def working_keys_of(self, tid: str) -> tuple[str, str] | None:
        """(TPK, TAK) under the LMK from the terminal's newest key exchange, None before any."""
        with self.db.read() as conn:
            row = conn.execute(_KEYS_OF, {"tid": tid}).one_or_none()
        return (row.tpk_lmk, row.tak_lmk) if row is not None else None

    # -- transactions and messages ---------------------------------------------------------------

    def record(self, transactions: Sequence[TransactionRecord], messages: Sequence[MessageRecord]) -> None:
        """Append a batch in one database transaction.

        A transaction whose key is already journalled is skipped; messages are always appended."""
        if not transactions and not messages:
            return
        with self.db.begin() as conn:
            if transactions:
                conn.execute(self._insert_transactions, [dict(zip(TRANSACTION_FIELDS, _transaction_values(t))) for t in transactions])
            if messages and self.db.dialect == "postgresql":
                _copy_messages(conn, messages)
            elif messages:
                conn.execute(_INSERT_MESSAGES, [dict(zip(MESSAGE_FIELDS, _message_values(m))) for m in messages])

    def find(self, tid: str, stan: str, transmission_date: date, kind: str) -> TransactionRecord | None:
        params = {"tid": tid, "stan": stan, "day": transmission_date, "kind": kind}
        with self.db.read() as conn:
            row = conn.execute(FIND_TRANSACTION, params).one_or_none()
        return transaction_from_row(row) if row is not None else None

    def find_many(self, keys: Collection[TransactionKey]) -> dict[TransactionKey, TransactionRecord]:
        """The transactions journalled under `keys` (tid, stan, date, kind), in one query; a key
        with none is absent from the answer."""
        if not keys:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(_FIND_TRANSACTIONS, {"keys": list(keys)}).all()
        found = (transaction_from_row(row) for row in rows)
        return {(t.tid, t.stan, t.transmission_date, t.kind): t for t in found}

    def max_rrn(self) -> str | None:
        """The highest RRN journalled so far (RRNs are zero-padded digits), None when empty."""
        with self.db.read() as conn:
            return conn.execute(_MAX_RRN).scalar_one()

    # -- store and forward -----------------------------------------------------------------------

    def enqueue_saf(self, rrn: str, bank_code: str, body: dict, at: datetime) -> int:
        """Store a reversal for delivery to `bank_code`; returns the entry id. The card number
        (`body["pan"]`) is stored sealed, and masked in the stored body."""
        pan = str(body.get("pan", ""))
        sealed = self.pan_cipher.seal(pan, saf_context(rrn))
        stored = {**body, "pan": mask_pan(pan)} if "pan" in body else body
        with self.db.begin() as conn:
            params = {"rrn": rrn, "bank_code": bank_code, "body": stored, "pan_sealed": sealed, "created_at": at}
            return conn.execute(_INSERT_SAF, params).scalar_one()

    def pending_saf(self, limit: int = 100) -> list[SafEntry]:
        """Reversals still to deliver, oldest first: neither acknowledged by the bank nor
        cancelled by operations staff."""
        with self.db.read() as conn:
            rows = conn.execute(PENDING_SAF, {"limit": limit}).all()
        return [saf_entry_from_row(row, self.pan_cipher) for row in rows]

    def record_saf_attempt(self, saf_id: int, outcome: str, detail: str | None, at: datetime) -> None:
        """One delivery try: 'ack' (the bank answered; the entry is done) or 'error'."""
        if outcome not in OUTCOMES:
            raise ValueError(f"SAF outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        with self.db.begin() as conn:
            conn.execute(_INSERT_ATTEMPT, {"saf_id": saf_id, "outcome": outcome, "detail": detail, "at": at})


    # -- batches ----------------------------------------------------------------------------------

    def batch_totals(self, tid: str, batch: int) -> BatchTotals:
        """What the journal holds for (terminal, batch), counted as settlement counts."""
        with self.db.read() as conn:
            return batch_totals_of(conn, [tid], [batch]).get((tid, batch), BatchTotals())

    def closing_settlement(self, tid: str, batch: int) -> SettlementRecord | None:
        """The settlement that closed (terminal, batch), or None while it is open."""
        with self.db.read() as conn:
            row = conn.execute(_CLOSING, {"tid": tid, "batch": batch}).one_or_none()
        return settlement_from_row(row) if row is not None else None

    def last_closed_batch(self, tid: str) -> int | None:
        """The highest batch number of the terminal that is closed, None when none is."""
        with self.db.read() as conn:
            return conn.execute(_LAST_CLOSED, {"tid": tid}).scalar_one()

    def record_settlement(self, record: SettlementRecord) -> bool:
        """Append a settlement decision; False (nothing written) when it would close a batch
        that another settlement closed already."""
        row = {
            "tid": record.tid,
            "batch": record.batch,
            "stan": record.stan,
            "processing_code": record.processing_code,
            "rc": record.rc,
            "at": record.at,
            **{f"terminal_{name}": getattr(record.terminal, name) for name in _TOTALS_FIELDS},
            **{f"switch_{name}": getattr(record.switch, name) for name in _TOTALS_FIELDS},
        }
        try:
            with self.db.begin() as conn:
                conn.execute(_INSERT_SETTLEMENT, row)
        except IntegrityError:
            if record.rc != CLOSED:
                raise
            return False
        return True

    def record_upload(self, record: UploadRecord) -> bool:
        """Append a detailed transaction; False when the same one was recorded already."""
        with self.db.begin() as conn:
            inserted = conn.execute(self._insert_upload, {n: getattr(record, n) for n in UPLOAD_FIELDS}).scalar_one_or_none()
        return inserted is not None
