"""The EDC's batch store: every financial transaction of the terminal's batches, kept for
settlement and detail upload, and the offline card list. One SQLite file per terminal,
`{data_dir}/edc/{tid}.batch.sqlite3` (WAL, synchronous FULL), or a PostgreSQL schema.

Why not the JSON state file: that file is rewritten whole on every save, so thousands of offline
sales there would cost O(n) per sale. Here each change is one small transaction, so the store is
crash-safe at any instant and a sale costs the same whether it is the first or the 10,000th.

What is kept (card numbers only sealed, with the state file's `CardSeal`; no PIN block ever):

- `txns`, appended once per transaction: approved online purchases (the 0200 without the PIN
  block, with RRN 37 and approval 38 of the answer), offline sales (the 0220 exactly as built,
  with the card's `tally_ref` and the calendar month, for the offline limit), and approved
  reversals (the 0400 as first built, with its answer; `original_id` names the purchase of this
  store it voids, when there is one). Adding the same transaction again (kind, STAN, field 7)
  returns the row already there: a replay after a crash doubles nothing.
- `answers`, appended: each answer (or missing answer) an offline advice or a detail upload got.
  An advice's status is derived: pending until a definite answer (any RC but 91, 96, 30);
  approved when that answer is 00; an exception otherwise (e.g. 51, 54).
- `batches` and `batch_events` (sealed, settle, closed), appended. Exactly one batch is open:
  new transactions carry its number in field 60. A batch that reaches `BATCH_COUNT_MAX` sales
  (purchases and offline sales), or that a sale would take past `BATCH_AMOUNT_IDR_MAX`, is
  sealed and the next number opens. This is how a long offline period spans several batches:
  the terminal keeps selling into new batches, and settlement later closes the sealed batches
  and then the open one, in order. A batch closes only on a 0510 with RC 00; closing the open
  batch opens the next number (after 999999 comes 1 again).
- `card_lists` and `card_refs`: the last complete offline card list (key still wrapped under
  the TMK, limit, hot and ID references). A new list replaces the old one in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    delete,
    exists,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.pool import StaticPool

from edc_terminal.store import CardSeal, state_key
from shared import protocol
from shared import rc as rc_table
from shared.cards import mask_pan
from shared.db import Database, sqlite_url
from shared.iso8583 import Message
from shared.migrate import NAMING_CONVENTION, Migrations
from shared.offline import ListHeader

metadata = MetaData(naming_convention=NAMING_CONVENTION)
BigId = BigInteger().with_variant(Integer, "sqlite")
MIGRATIONS = Migrations(Path(__file__).parent / "migrations")
HEAD_REVISION = "0001"

# Transaction kinds
PURCHASE = "purchase"
OFFLINE = "offline"
REVERSAL = "reversal"
TXN_KINDS = (PURCHASE, OFFLINE, REVERSAL)
SALE_KINDS = (PURCHASE, OFFLINE)  # what fills a batch
# Batch event kinds
SEALED = "sealed"
SETTLE = "settle"  # a 0510 answer (audit)
CLOSED = "closed"
BATCH_EVENTS = (SEALED, SETTLE, CLOSED)
# Answer steps
ADVICE = "advice"
UPLOAD = "upload"
ANSWER_STEPS = (ADVICE, UPLOAD)
# List reference kinds
HOT = "hot"
ID = "id"
# An advice answered with one of these (or not at all) is sent again later, unchanged.
RETRY_RCS = (rc_table.ISSUER_UNAVAILABLE, rc_table.SYSTEM_ERROR, rc_table.FORMAT_ERROR)


def is_definite(rc: str | None) -> bool:
    """An answer that settles an advice or a detail upload: any RC but 91, 96 and 30."""
    return rc is not None and rc not in RETRY_RCS


@dataclass(frozen=True, slots=True)
class AdviceAnswer:
    """A definite answer to an offline advice, as `BatchStore.record_advice_answers` stores it."""

    txn_id: int
    rc: str
    answer: Message
    at: datetime
ADVICES_PAGE_MAX = 1_000
EXCEPTIONS_MAX = 1_000
MAC_FIELDS = ("64", "128")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


batches = Table(
    "batches",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("number", Integer, nullable=False),
    Column("opened_at", DateTime, nullable=False),
    CheckConstraint(f"number BETWEEN 1 AND {protocol.BATCH_MAX}", name="number_range"),
)

batch_events = Table(
    "batch_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("batch_id", ForeignKey("batches.id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("rc", String(2), nullable=True),
    Column("detail", JSON, nullable=True),
    Column("at", DateTime, nullable=False),
    CheckConstraint(_in("kind", BATCH_EVENTS), name="kind"),
    Index("ix_batch_events_batch", "batch_id", "kind"),
    # A batch is sealed at most once and closed at most once.
    Index(
        "uq_batch_events_state",
        "batch_id",
        "kind",
        unique=True,
        sqlite_where=text("kind <> 'settle'"),
        postgresql_where=text("kind <> 'settle'"),
    ),
)

txns = Table(
    "txns",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("batch_id", ForeignKey("batches.id"), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("stan", String(6), nullable=False),
    Column("transmitted", String(10), nullable=False),  # field 7 of the request
    Column("request", JSON, nullable=False),  # field 2 sealed, no PIN block, no MAC
    Column("rrn", String(12), nullable=True),
    Column("approval_code", String(6), nullable=True),
    Column("amount_idr", BigInteger, nullable=False),
    Column("original_id", ForeignKey("txns.id"), nullable=True),  # a reversal: the purchase it voids
    Column("answer", JSON, nullable=True),  # a reversal's answer (field 2 sealed)
    Column("tally_ref", String(16), nullable=True),  # an offline sale: the card's tally reference
    Column("period", String(7), nullable=True),  # an offline sale: YYYY-MM of the sale
    Column("pan_masked", String(19), nullable=False),
    Column("at", DateTime, nullable=False),
    CheckConstraint(_in("kind", TXN_KINDS), name="kind"),
    CheckConstraint("amount_idr >= 0", name="amount_not_negative"),
    UniqueConstraint("kind", "stan", "transmitted", name="uq_txns_kind_stan_transmitted"),
    Index("ix_txns_batch", "batch_id", "kind", "amount_idr"),
    Index("ix_txns_tally", "tally_ref", "period", "amount_idr"),
    Index("ix_txns_original", "original_id"),
)

answers = Table(
    "answers",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("txn_id", ForeignKey("txns.id"), nullable=False),
    Column("step", String(8), nullable=False),
    Column("rc", String(2), nullable=True),  # None: no (valid) answer came
    Column("definite", Boolean, nullable=False),
    Column("answer", JSON, nullable=True),  # field 2 sealed
    Column("at", DateTime, nullable=False),
    CheckConstraint(_in("step", ANSWER_STEPS), name="step"),
    Index("ix_answers_txn", "txn_id", "step", "definite"),
)

card_lists = Table(
    "card_lists",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key_wrapped", String(32), nullable=False),
    Column("key_check", String(6), nullable=False),
    Column("offline_limit_idr", BigInteger, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("hot_count", Integer, nullable=False),
    Column("id_count", Integer, nullable=False),
    Column("loaded_at", DateTime, nullable=False),
)

card_refs = Table(
    "card_refs",
    metadata,
    Column("list_id", ForeignKey("card_lists.id"), primary_key=True),
    Column("kind", String(3), primary_key=True),
    Column("ref", String(8), primary_key=True),
    CheckConstraint(_in("kind", (HOT, ID)), name="kind"),
)


# -- values ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchInfo:
    id: int
    number: int
    state: str  # "open", "sealed" or "closed"
    sales: int  # purchases and offline sales in it (whatever their answers)
    amount_idr: int


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an added transaction went: its row, its batch, and the batch now open."""

    txn_id: int
    batch: int
    open_batch: int
    added: bool  # False: the same transaction was already stored


@dataclass(frozen=True, slots=True)
class StoredAdvice:
    """An offline sale whose 0220 still needs a definite answer."""

    txn_id: int
    batch: int
    message: Message  # the 0220 exactly as built, field 2 opened
    attempts: int  # answers (or missing answers) recorded so far


@dataclass(frozen=True, slots=True)
class AdviceException:
    """An offline sale the bank did not accept (e.g. 51, 54): not in the totals, kept for follow-up."""

    batch: int
    stan: str
    approval_code: str
    amount_idr: int
    pan_masked: str
    rc: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CardListInfo:
    id: int
    key_wrapped: str
    key_check: str
    offline_limit_idr: int
    pages: int
    hot_count: int
    id_count: int
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class StoreSummary:
    """What the status line and the settle report show."""

    open_batch: int
    open_sales: int
    unsettled_batches: int  # the open one included
    pending_advices: int
    exceptions: int


# -- storage backends ------------------------------------------------------------------------------


class _Memory:
    """An in-memory SQLite database (tests and throw-away terminals): one shared connection."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self.engine = create_engine("sqlite+pysqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        self._lock = threading.RLock()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._lock, self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def batch_store_path(data_dir: Path | str, tid: str) -> Path:
    return Path(data_dir) / "edc" / f"{tid}.batch.sqlite3"


def _migrate(db: Database) -> None:
    """Bring the database to the head revision (Alembic); a quick check first, so opening an
    up-to-date store costs one query."""
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != HEAD_REVISION:
        MIGRATIONS.upgrade(db)


# -- the store ---------------------------------------------------------------------------------------


class BatchStore:
    """One terminal's batches, transactions and card list. Each method is one transaction."""

    def __init__(self, db: Database | _Memory, seal: CardSeal, path: Path | None = None) -> None:
        self._db = db
        self._seal = seal
        self.path = path

    @classmethod
    def open(cls, data_dir: Path | str, tid: str, tmk: bytes) -> BatchStore:
        """The terminal's file `{data_dir}/edc/{tid}.batch.sqlite3`, created and migrated as needed."""
        path = batch_store_path(data_dir, tid)
        db = Database(sqlite_url(path.parent, path.name.removesuffix(".sqlite3")), pool_size=2)
        _migrate(db)
        return cls(db, CardSeal(state_key(tmk, tid), tid), path)

    @classmethod
    def on_database(cls, db: Database, tid: str, tmk: bytes) -> BatchStore:
        """The store in `db` (e.g. a PostgreSQL schema of its own), migrated as needed."""
        _migrate(db)
        return cls(db, CardSeal(state_key(tmk, tid), tid))

    @classmethod
    def in_memory(cls, tid: str, tmk: bytes) -> BatchStore:
        db = _Memory()
        metadata.create_all(db.engine)
        return cls(db, CardSeal(state_key(tmk, tid), tid))

    def close(self) -> None:
        self._db.dispose()

    # -- sealing card numbers ------------------------------------------------------------------

    def _sealed(self, message: Message) -> Message:
        clean = {k: v for k, v in message.items() if k not in MAC_FIELDS and k != "52"}
        return self._seal.message_out(clean) or clean

    def _opened(self, message: Message | None) -> Message | None:
        return self._seal.message_in(message) if message is not None else None

    # -- batches ---------------------------------------------------------------------------------

    def ensure_open(self, number: int, at: datetime) -> int:
        """The open batch number; a new store opens batch `number` first (the number the state
        file held, so a terminal that ran before this store keeps its numbering)."""
        with self._db.begin() as conn:
            current = _open_batch(conn)
            if current is not None:
                return current.number
            protocol.batch_field(number)  # ValueError outside 1..BATCH_MAX
            conn.execute(insert(batches).values(number=number, opened_at=at))
            return number

    def open_batch(self) -> BatchInfo:
        with self._db.read() as conn:
            found = _open_batch(conn)
        if found is None:
            raise LookupError("the batch store has no open batch: call ensure_open first")
        return found

    def batch_for(self, amount_idr: int, at: datetime) -> int:
        """The batch number a new sale of `amount_idr` goes into (field 60): the open batch, or
        the next one when this sale would not fit the open batch's totals (which is then sealed)."""
        with self._db.begin() as conn:
            return _batch_for(conn, amount_idr, at)

    def unsettled(self) -> list[BatchInfo]:
        """Batches not closed yet, oldest first: the sealed ones, then the open one."""
        closed = _has_event(CLOSED)
        with self._db.read() as conn:
            rows = conn.execute(select(batches.c.id).where(~closed).order_by(batches.c.id)).scalars().all()
            return [_batch_info(conn, row) for row in rows]

    def batch_closed(self, number: int) -> bool:
        """True when the latest batch with this number is closed (its sales can no longer be voided)."""
        with self._db.read() as conn:
            batch_id = conn.execute(select(func.max(batches.c.id)).where(batches.c.number == number)).scalar()
            return batch_id is not None and _batch_state(conn, batch_id) == "closed"

    def record_settlement(self, batch_id: int, processing: str, rc: str | None, totals: protocol.BatchTotals, at: datetime) -> None:
        """A 0510 answer (or none: rc None) to a 0500 for this batch, for the record."""
        detail = {"processing": processing, "totals": protocol.totals_field(totals)}
        with self._db.begin() as conn:
            conn.execute(insert(batch_events).values(batch_id=batch_id, kind=SETTLE, rc=rc, detail=detail, at=at))

    def close_batch(self, batch_id: int, at: datetime) -> int:
        """The batch was closed by a 0510 00. Closing the open batch opens the next number.
        Closing a closed batch again changes nothing. Returns the open batch number after."""
        with self._db.begin() as conn:
            state = _batch_state(conn, batch_id)
            if state != "closed":
                conn.execute(insert(batch_events).values(batch_id=batch_id, kind=CLOSED, rc=rc_table.APPROVED, at=at))
                if state == "open":
                    number = conn.execute(select(batches.c.number).where(batches.c.id == batch_id)).scalar_one()
                    conn.execute(insert(batches).values(number=number % protocol.BATCH_MAX + 1, opened_at=at))
            return _require_open(conn).number

    # -- transactions ----------------------------------------------------------------------------

    def add_purchase(self, request: Message, rrn: str, approval_code: str, at: datetime) -> Stored:
        """An approved online purchase: its request (the PIN block is dropped) and its answer's 37/38."""
        values = {"rrn": rrn or None, "approval_code": approval_code or None}
        return self._add(PURCHASE, request, at, values)

    def add_offline_sale(self, advice: Message, tally_ref: str, period: str, at: datetime) -> Stored:
        """An offline sale: its 0220 exactly as built (sent later, unchanged), before any slip."""
        values = {"approval_code": advice.get("38"), "tally_ref": tally_ref, "period": period}
        return self._add(OFFLINE, advice, at, values)

    def sell_offline(
        self, build: Callable[[int], Message], amount_idr: int, tally_ref: str, period: str, at: datetime
    ) -> tuple[Stored, Message]:
        """`batch_for` and `add_offline_sale` in one transaction: `build(batch)` makes the 0220
        for the batch the sale goes into. Returns where it went and the 0220."""
        with self._db.begin() as conn:
            advice = build(_batch_for(conn, amount_idr, at))
            values = {"approval_code": advice.get("38"), "tally_ref": tally_ref, "period": period}
            return self._add_in(conn, OFFLINE, advice, at, values), advice

    def add_reversal(self, reversal: Message, answer: Message, at: datetime) -> Stored:
        """An approved reversal (the 0400 as first built and its answer). When it voids a
        purchase of this store it joins that purchase's batch and counts in its totals."""
        _, stan, transmitted = protocol.parse_original_data(reversal["90"])
        with self._db.begin() as conn:
            original = conn.execute(
                select(txns.c.id, txns.c.batch_id).where(
                    txns.c.kind == PURCHASE, txns.c.stan == stan, txns.c.transmitted == transmitted
                )
            ).first()
            values = {
                "rrn": answer.get("37") or None,
                "approval_code": answer.get("38") or None,
                "original_id": original.id if original else None,
                "answer": self._sealed(answer),
            }
            return self._add_in(conn, REVERSAL, reversal, at, values, batch_id=original.batch_id if original else None)

    def _add(self, kind: str, message: Message, at: datetime, values: dict) -> Stored:
        with self._db.begin() as conn:
            return self._add_in(conn, kind, message, at, values)

    def _add_in(self, conn: Connection, kind: str, message: Message, at: datetime, values: dict, batch_id: int | None = None) -> Stored:
        key = {"kind": kind, "stan": message["11"], "transmitted": message["7"]}
        existing = conn.execute(_EXISTING, key).first()
        if existing is not None:
            return Stored(existing.id, _number_of(conn, existing.batch_id), _require_open(conn).number, added=False)
        target = _batch_row(conn, batch_id) if batch_id is not None else _batch_for_field(conn, message.get("60"))
        row = {
            "batch_id": target.id,
            "kind": kind,
            "stan": message["11"],
            "transmitted": message["7"],
            "request": self._sealed(message),
            "amount_idr": protocol.amount_idr(message),
            "pan_masked": mask_pan(message["2"]),
            "at": at,
            **values,
        }
        txn_id = conn.execute(insert(txns).values(**row)).inserted_primary_key[0]
        if target.ended:
            return Stored(txn_id, target.number, _require_open(conn).number, added=True)
        if kind in SALE_KINDS and conn.execute(_SALES, {"batch_id": target.id}).one()[0] >= protocol.BATCH_COUNT_MAX:
            return Stored(txn_id, target.number, _seal(conn, target.id, target.number, at), added=True)
        return Stored(txn_id, target.number, target.number, added=True)

    def offline_spent(self, tally_ref: str, period: str) -> int:
        """What this terminal approved offline for one card (its tally reference) in one month."""
        with self._db.read() as conn:
            query = select(func.coalesce(func.sum(txns.c.amount_idr), 0)).where(
                txns.c.kind == OFFLINE, txns.c.tally_ref == tally_ref, txns.c.period == period
            )
            return int(conn.execute(query).scalar_one())

    # -- advices ---------------------------------------------------------------------------------

    def pending_advices(self, after_id: int = 0, limit: int = ADVICES_PAGE_MAX) -> list[StoredAdvice]:
        """Offline sales without a definite answer, oldest first, after row `after_id`."""
        limit = max(1, min(limit, ADVICES_PAGE_MAX))
        tried = (
            select(func.count()).select_from(answers).where(answers.c.txn_id == txns.c.id, answers.c.step == ADVICE).scalar_subquery()
        )
        query = (
            select(txns.c.id, txns.c.request, batches.c.number, tried.label("attempts"))
            .join(batches, batches.c.id == txns.c.batch_id)
            .where(txns.c.kind == OFFLINE, txns.c.id > after_id, ~_definite(ADVICE))
            .order_by(txns.c.id)
            .limit(limit)
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [StoredAdvice(r.id, r.number, self._opened(r.request) or {}, int(r.attempts)) for r in rows]

    def pending_advice_count(self) -> int:
        with self._db.read() as conn:
            query = select(func.count()).select_from(txns).where(txns.c.kind == OFFLINE, ~_definite(ADVICE))
            return int(conn.execute(query).scalar_one())

    def record_advice_answers(self, answered: Sequence[AdviceAnswer]) -> None:
        """Definite answers to advices, in one transaction (the upload stores what one round of
        answers brought at once). As `record_answer`: an advice keeps its first definite answer."""
        assert all(is_definite(a.rc) for a in answered), "only definite answers are stored together"
        if not answered:
            return
        ids = sorted({a.txn_id for a in answered})
        with self._db.begin() as conn:
            settled = select(answers.c.txn_id).where(answers.c.txn_id.in_(ids), answers.c.step == ADVICE, answers.c.definite)
            kept = set(conn.execute(settled).scalars())
            rows = []
            for a in answered:
                if a.txn_id in kept:
                    continue
                kept.add(a.txn_id)
                rows.append({"txn_id": a.txn_id, "step": ADVICE, "rc": a.rc, "definite": True, "answer": self._sealed(a.answer), "at": a.at})
            if rows:
                conn.execute(insert(answers), rows)

    def record_answer(self, txn_id: int, step: str, rc: str | None, answer: Message | None, at: datetime) -> bool:
        """An answer to an advice (step "advice") or a detail upload ("upload"); rc None when
        none came. Returns whether it is definite (any RC but 91, 96 and 30). An advice keeps its
        first definite answer: anything recorded for it later (a replay) is ignored."""
        definite = is_definite(rc)
        sealed = self._sealed(answer) if answer is not None else None
        with self._db.begin() as conn:
            if step == ADVICE:
                settled = select(answers.c.id).where(answers.c.txn_id == txn_id, answers.c.step == ADVICE, answers.c.definite)
                if conn.execute(settled.limit(1)).first() is not None:
                    return True
            values = {"txn_id": txn_id, "step": step, "rc": rc, "definite": definite, "answer": sealed, "at": at}
            conn.execute(insert(answers).values(**values))
        return definite

    def exceptions(self, batch_number: int | None = None, unsettled_only: bool = False) -> list[AdviceException]:
        """Offline sales the bank did not accept (a definite answer other than 00), oldest first:
        of one batch, of the batches not closed yet, or all (at most EXCEPTIONS_MAX)."""
        query = (
            select(txns, answers.c.rc.label("answer_rc"), batches.c.number)
            .join(answers, and_(answers.c.txn_id == txns.c.id, answers.c.step == ADVICE, answers.c.definite))
            .join(batches, batches.c.id == txns.c.batch_id)
            .where(txns.c.kind == OFFLINE, answers.c.rc != rc_table.APPROVED)
            .order_by(txns.c.id)
            .limit(EXCEPTIONS_MAX)
        )
        if batch_number is not None:
            query = query.where(batches.c.number == batch_number)
        if unsettled_only:
            query = query.where(~_has_event(CLOSED))
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            AdviceException(r.number, r.stan, r.approval_code or "", int(r.amount_idr), r.pan_masked, r.answer_rc, r.at) for r in rows
        ]

    # -- settlement ------------------------------------------------------------------------------

    def totals(self, batch_id: int) -> protocol.BatchTotals:
        """The terminal's totals of one batch: approved online purchases and offline sales the
        bank accepted (00); approved reversals of approved purchases, once per original, at the
        original's amount."""
        with self._db.read() as conn:
            count, amount = conn.execute(_counted_sales(batch_id)).one()
            voided = (
                select(txns.c.original_id)
                .where(txns.c.batch_id == batch_id, txns.c.kind == REVERSAL, txns.c.original_id.is_not(None))
                .distinct()
                .scalar_subquery()
            )
            originals = select(func.count(), func.coalesce(func.sum(txns.c.amount_idr), 0)).where(txns.c.id.in_(voided))
            rev_count, rev_amount = conn.execute(originals).one()
        return protocol.BatchTotals(int(count), int(amount), int(rev_count), int(rev_amount))

    def details(self, batch_id: int) -> list[tuple[int, Message]]:
        """What a detail upload (0320) carries for this batch, oldest first, as (row, message):
        each transaction of the totals as the original was sent, with 37 and 38 of its answer."""
        approved = _definite(ADVICE, rc_table.APPROVED)
        counted = (txns.c.kind == PURCHASE) | ((txns.c.kind == OFFLINE) & approved) | (
            (txns.c.kind == REVERSAL) & txns.c.original_id.is_not(None)
        )
        query = select(txns).where(txns.c.batch_id == batch_id, counted).order_by(txns.c.id)
        advice_answer = select(answers.c.answer).where(answers.c.step == ADVICE, answers.c.definite)
        with self._db.read() as conn:
            out: list[tuple[int, Message]] = []
            for row in conn.execute(query).all():
                answer = row.answer
                if row.kind == OFFLINE:
                    answer = conn.execute(advice_answer.where(answers.c.txn_id == row.id).limit(1)).scalar()
                out.append((row.id, _with_answer(self._opened(row.request) or {}, row.rrn, row.approval_code, answer)))
        return out

    def summary(self) -> StoreSummary:
        with self._db.read() as conn:
            current = _require_open(conn)
            unsettled = conn.execute(select(func.count()).select_from(batches).where(~_has_event(CLOSED))).scalar_one()
            pending = conn.execute(select(func.count()).select_from(txns).where(txns.c.kind == OFFLINE, ~_definite(ADVICE))).scalar_one()
            refused = (txns.c.kind == OFFLINE, _definite(ADVICE), ~_definite(ADVICE, rc_table.APPROVED))
            failed = conn.execute(select(func.count()).select_from(txns).where(*refused)).scalar_one()
        return StoreSummary(current.number, current.sales, int(unsettled), int(pending), int(failed))

    # -- the offline card list ---------------------------------------------------------------------

    def replace_card_list(self, header: ListHeader, hot: list[str], ids: list[str], at: datetime) -> CardListInfo:
        """Store a complete list (all its pages arrived) in place of the previous one."""
        hot_set, id_set = sorted(set(hot)), sorted(set(ids))
        row = {
            "key_wrapped": header.key_wrapped.upper(),
            "key_check": header.key_check.upper(),
            "offline_limit_idr": header.offline_limit_idr,
            "pages": header.pages,
            "hot_count": len(hot_set),
            "id_count": len(id_set),
            "loaded_at": at,
        }
        with self._db.begin() as conn:
            old = conn.execute(select(card_lists.c.id)).scalars().all()
            if old:
                conn.execute(delete(card_refs).where(card_refs.c.list_id.in_(old)))
                conn.execute(delete(card_lists).where(card_lists.c.id.in_(old)))
            list_id = conn.execute(insert(card_lists).values(**row)).inserted_primary_key[0]
            refs = [{"list_id": list_id, "kind": HOT, "ref": r} for r in hot_set]
            refs += [{"list_id": list_id, "kind": ID, "ref": r} for r in id_set]
            if refs:
                conn.execute(insert(card_refs), refs)
        return CardListInfo(id=list_id, **row)

    def card_list(self) -> CardListInfo | None:
        with self._db.read() as conn:
            row = conn.execute(select(card_lists).order_by(card_lists.c.id.desc()).limit(1)).first()
        return CardListInfo(**row._mapping) if row is not None else None

    def listed(self, list_id: int, kind: str, ref: str) -> bool:
        """Whether reference `ref` is on the list's hot list (kind "hot") or ID list ("id")."""
        query = select(card_refs.c.ref).where(card_refs.c.list_id == list_id, card_refs.c.kind == kind, card_refs.c.ref == ref)
        with self._db.read() as conn:
            return conn.execute(query).first() is not None


# -- query helpers -----------------------------------------------------------------------------------


def _has_event(kind: str):  # noqa: ANN202
    return exists().where(batch_events.c.batch_id == batches.c.id, batch_events.c.kind == kind)


def _definite(step: str, rc: str | None = None):  # noqa: ANN202
    condition = exists().where(answers.c.txn_id == txns.c.id, answers.c.step == step, answers.c.definite)
    return condition.where(answers.c.rc == rc) if rc is not None else condition


def _counted_sales(batch_id: int):  # noqa: ANN202
    """Count and sum of the sales of a batch that count in its totals: approved online
    purchases, and offline sales the bank accepted (00)."""
    counted = (txns.c.kind == PURCHASE) | ((txns.c.kind == OFFLINE) & _definite(ADVICE, rc_table.APPROVED))
    return select(func.count(), func.coalesce(func.sum(txns.c.amount_idr), 0)).where(txns.c.batch_id == batch_id, counted)


def _with_answer(message: Message, rrn: str | None, approval_code: str | None, answer: Message | None) -> Message:
    """The original as sent, plus RRN (37) and approval code (38): stored, else of its answer."""
    out = dict(message)
    answer = answer or {}
    if rrn or answer.get("37"):
        out["37"] = rrn or answer["37"]
    if approval_code or answer.get("38"):
        out["38"] = approval_code or answer["38"]
    return out


def _batch_state(conn: Connection, batch_id: int) -> str:
    kinds = set(conn.execute(select(batch_events.c.kind).where(batch_events.c.batch_id == batch_id)).scalars())
    return "closed" if CLOSED in kinds else "sealed" if SEALED in kinds else "open"


def _ended():  # noqa: ANN202
    """A batch that is sealed or closed (no longer takes new sales)."""
    return exists().where(batch_events.c.batch_id == batches.c.id, batch_events.c.kind.in_((SEALED, CLOSED)))


# Statements of the hot path (one sale), built once.
_EXISTING = select(txns.c.id, txns.c.batch_id).where(
    txns.c.kind == bindparam("kind"), txns.c.stan == bindparam("stan"), txns.c.transmitted == bindparam("transmitted")
)
_SALES = select(func.count(), func.coalesce(func.sum(txns.c.amount_idr), 0)).where(
    txns.c.batch_id == bindparam("batch_id"), txns.c.kind.in_(SALE_KINDS)
)
_BATCH_ROW = select(batches.c.id, batches.c.number, _ended().label("ended"))
_LAST_BATCH = _BATCH_ROW.order_by(batches.c.id.desc()).limit(1)
_UNCLOSED_BY_NUMBER = (
    _BATCH_ROW.where(batches.c.number == bindparam("number"), ~_has_event(CLOSED)).order_by(batches.c.id.desc()).limit(1)
)


def _batch_row(conn: Connection, batch_id: int) -> Row:
    return conn.execute(_BATCH_ROW.where(batches.c.id == batch_id)).one()


def _batch_info(conn: Connection, batch_id: int) -> BatchInfo:
    number = conn.execute(select(batches.c.number).where(batches.c.id == batch_id)).scalar_one()
    count, amount = conn.execute(_SALES, {"batch_id": batch_id}).one()
    return BatchInfo(batch_id, number, _batch_state(conn, batch_id), int(count), int(amount))


def _open_batch(conn: Connection) -> BatchInfo | None:
    """The last batch, when it is neither sealed nor closed (there is exactly one such batch)."""
    last = conn.execute(_LAST_BATCH).first()
    if last is None or last.ended:
        return None
    count, amount = conn.execute(_SALES, {"batch_id": last.id}).one()
    return BatchInfo(last.id, last.number, "open", int(count), int(amount))


def _require_open(conn: Connection) -> BatchInfo:
    found = _open_batch(conn)
    if found is None:
        raise LookupError("the batch store has no open batch: call ensure_open first")
    return found


def _number_of(conn: Connection, batch_id: int) -> int:
    return conn.execute(select(batches.c.number).where(batches.c.id == batch_id)).scalar_one()


def _seal(conn: Connection, batch_id: int, number: int, at: datetime) -> int:
    """Seal the open batch and open the next number; returns that number."""
    conn.execute(insert(batch_events).values(batch_id=batch_id, kind=SEALED, at=at))
    following = number % protocol.BATCH_MAX + 1
    conn.execute(insert(batches).values(number=following, opened_at=at))
    return following


def _batch_for(conn: Connection, amount_idr: int, at: datetime) -> int:
    """The open batch's number when a sale of `amount_idr` fits it; else it is sealed and the
    next number (opened now) is returned."""
    current = _require_open(conn)
    fits = current.sales + 1 <= protocol.BATCH_COUNT_MAX and current.amount_idr + amount_idr <= protocol.BATCH_AMOUNT_IDR_MAX
    if fits or current.sales == 0:
        return current.number
    return _seal(conn, current.id, current.number, at)


def _batch_for_field(conn: Connection, field60: str | None) -> Row:
    """The unclosed batch whose number a message carries in field 60; else the open batch."""
    if field60 and field60.isdigit():
        found = conn.execute(_UNCLOSED_BY_NUMBER, {"number": int(field60)}).first()
        if found is not None:
            return found
    last = conn.execute(_LAST_BATCH).first()
    if last is None or last.ended:
        raise LookupError("the batch store has no open batch: call ensure_open first")
    return last
