"""The switch journal on SQLite and PostgreSQL: what the switch core writes comes back whole,
retries do not double a transaction, the newest key exchange wins, reversals owed to a bank
stay pending until it acknowledges them, and the migrations build exactly the tables."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, event, func, inspect, select
from sqlalchemy.exc import IntegrityError

from shared.banks import get_bank
from shared.cards import make_pan, mask_pan
from shared.db import Database, sqlite_url
from switch import migrate
from switch.hsm import PanHasher
from switch.journal import Journal, MessageRecord, TerminalRecord, TransactionRecord
from switch.tables import Base, MessageLog, Transaction

DAY = date(2026, 11, 3)
AT = datetime(2026, 11, 3, 9, 0, 0)
BNI_PAN = make_pan(get_bank("bni").iin, 1)
BRI_PAN = make_pan(get_bank("bri").iin, 2)
PAN_HASH = PanHasher()  # the demo PAN hash key, as a switch without a key of its own


def open_journal(storage: dict) -> Journal:
    """The switch journal on the storage of the test (SQLite file or PostgreSQL schema), migrated
    to the newest revision. On SQLite the migrated file is made once per test process and copied:
    the migrations themselves are tested below."""
    if storage.get("database_url"):
        journal = Journal(Database(storage["database_url"], schema=storage.get("db_schema")))
        journal.migrate()
        return journal
    shutil.copyfile(_migrated_sqlite_file(), storage["data_dir"] / "switch.sqlite3")
    return Journal(Database(sqlite_url(storage["data_dir"], "switch")))


@functools.cache
def _migrated_sqlite_file() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="journal-template-"))
    atexit.register(shutil.rmtree, folder, True)
    template = Journal(Database(sqlite_url(folder, "switch")))
    template.migrate()
    template.db.dispose()
    return folder / "switch.sqlite3"


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    yield opened
    opened.db.dispose()


def terminal(tid: str = "BNI00001", bank: str = "bni", tmk: str = "11" * 16) -> TerminalRecord:
    serial = int(tid[3:])
    return TerminalRecord(tid, get_bank(bank).merchant_id(serial), bank, f"e-Warong {tid}", tmk)


def transaction(rrn: str, stan: str, kind: str = "purchase", **overrides) -> TransactionRecord:  # noqa: ANN003
    """A journal record as the core writes it: an approved BNI purchase unless told otherwise,
    with the search key of its card (demo PAN hash key)."""
    mti = {"inquiry": "0100", "purchase": "0200", "advice": "0220", "reversal": "0400"}[kind]
    pan = overrides.pop("pan", BNI_PAN)
    values = {
        "rrn": rrn,
        "tid": "BNI00001",
        "mid": "EWBNI0000000001",
        "stan": stan,
        "transmission_date": DAY,
        "mti": mti,
        "kind": kind,
        "pan_masked": mask_pan(pan),
        "bank_code": "bni",
        "amount_idr": 0 if kind == "inquiry" else 25_000,
        "rc": "00",
        "approval_code": f"A{rrn[-5:]}",
        "balance_idr": 125_000,
        "request_hash": f"{int(rrn):064x}",
        "response": {"t": f"{mti[:2]}{int(mti[2]) + 1}{mti[3]}", "2": mask_pan(pan), "11": stan, "37": rrn, "39": "00"},
        "original_rrn": None,
        "bank_latency_ms": 40,
        "created_at": AT,
        "pan_hash": PAN_HASH(pan),
    }
    return TransactionRecord(**{**values, **overrides})


def trail(record: TransactionRecord) -> list[MessageRecord]:
    """The four legs of a routed request, fields masked by the caller."""
    fields = {"2": record.pan_masked, "11": record.stan}
    at = record.created_at
    return [
        MessageRecord(record.rrn, record.tid, record.stan, record.mti, "terminal_in", None, fields, at),
        MessageRecord(record.rrn, record.tid, record.stan, record.mti, "bank_out", None, {"op": record.kind}, at),
        MessageRecord(record.rrn, record.tid, record.stan, record.mti, "bank_in", record.rc, {"rc": record.rc}, at),
        MessageRecord(record.rrn, record.tid, record.stan, record.response["t"], "terminal_out", record.rc, record.response, at),
    ]


def messages_of(journal: Journal, rrn: str) -> list[tuple[str, dict]]:
    query = select(MessageLog.direction, MessageLog.fields).where(MessageLog.rrn == rrn).order_by(MessageLog.id)
    with journal.db.read() as conn:
        return [(direction, fields) for direction, fields in conn.execute(query)]


def transaction_count(journal: Journal) -> int:
    with journal.db.read() as conn:
        return conn.execute(select(func.count()).select_from(Transaction)).scalar_one()


# -- transactions and messages ---------------------------------------------------------------


def test_a_reversal_comes_back_exactly_as_journalled(journal: Journal) -> None:
    """Every field, including the replay answer, the original RRN and the latency."""
    purchase = transaction("000000000041", "000041")
    reversal = transaction(
        "000000000042", "000042", "reversal",
        original_rrn="000000000041", approval_code=None, balance_idr=150_000, bank_latency_ms=1234,
        created_at=AT + timedelta(seconds=45),
    )
    journal.record([purchase, reversal], trail(purchase) + trail(reversal))

    assert journal.find("BNI00001", "000042", DAY, "reversal") == reversal
    assert journal.find("BNI00001", "000041", DAY, "purchase") == purchase
    assert journal.find("BNI00001", "000041", DAY, "reversal") is None  # the key includes the kind
    assert journal.find("BNI00001", "000041", DAY + timedelta(days=1), "purchase") is None
    assert [d for d, _ in messages_of(journal, "000000000042")] == ["terminal_in", "bank_out", "bank_in", "terminal_out"]


def test_many_transactions_are_found_by_their_keys_in_one_query(journal: Journal) -> None:
    """Each key finds exactly its row; a key that differs in any part (kind, date, STAN,
    terminal) finds nothing and is absent from the answer."""
    purchase = transaction("000000000051", "000051")
    advice = transaction("000000000052", "000052", "advice")
    elsewhere = transaction("000000000053", "000051", tid="BNI00002", mid="EWBNI0000000002")
    journal.record([purchase, advice, elsewhere], [])
    keys = [
        ("BNI00001", "000051", DAY, "purchase"),
        ("BNI00001", "000052", DAY, "advice"),
        ("BNI00002", "000051", DAY, "purchase"),
        ("BNI00001", "000051", DAY, "reversal"),
        ("BNI00001", "000052", DAY + timedelta(days=1), "advice"),
        ("BNI00001", "000099", DAY, "purchase"),
        ("BNI00003", "000051", DAY, "purchase"),
    ]

    found = journal.find_many(keys)

    assert found == {keys[0]: purchase, keys[1]: advice, keys[2]: elsewhere}
    assert journal.find_many([]) == {}


def test_a_refused_request_without_bank_or_balance_round_trips(journal: Journal) -> None:
    refused = transaction(
        "000000000007", "000007", pan="1234567890123", bank_code=None, rc="14",
        approval_code=None, balance_idr=None, bank_latency_ms=None, response={"t": "0210", "39": "14"},
    )
    journal.record([refused], [])
    assert journal.find("BNI00001", "000007", DAY, "purchase") == refused
    assert refused.pan_masked == "123456***0123"


def test_a_retried_request_is_skipped_but_its_messages_are_kept(journal: Journal) -> None:
    """The EDC repeats STAN 000050: one transaction row (the first), every message kept."""
    first = transaction("000000000050", "000050", amount_idr=30_000)
    retry = transaction("000000000051", "000050", amount_idr=99_000, created_at=AT + timedelta(seconds=30))
    journal.record([first], trail(first))
    journal.record([retry], trail(retry))
    # and within a single batch, the later twin is skipped too
    twin = transaction("000000000052", "000050")
    journal.record([twin, transaction("000000000053", "000053")], [])

    assert journal.find("BNI00001", "000050", DAY, "purchase") == first
    assert transaction_count(journal) == 2
    assert len(messages_of(journal, "000000000050")) == 4
    assert len(messages_of(journal, "000000000051")) == 4  # the retry's trail is still there


def test_a_batch_is_one_database_transaction(journal: Journal) -> None:
    """A batch that cannot be stored whole leaves nothing behind."""
    good = transaction("000000000060", "000060")
    broken = MessageRecord("000000000060", "BNI00001", "000060", "0200", "sideways", None, {}, AT)
    with pytest.raises(IntegrityError):
        journal.record([good], [*trail(good), broken])
    assert journal.find("BNI00001", "000060", DAY, "purchase") is None
    assert messages_of(journal, "000000000060") == []


def test_a_batch_is_written_with_one_bulk_statement_per_table(journal: Journal) -> None:
    """The hot path: 300 transactions and 1,200 messages in two bulk statements (on
    PostgreSQL the messages go by COPY, which SQLAlchemy's events do not see)."""
    batch = [transaction(f"{n:012d}", f"{n:06d}") for n in range(1, 301)]
    messages = [m for record in batch for m in trail(record)]
    inserts: list[tuple[str, bool]] = []

    @event.listens_for(journal.db.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append((statement.split("(")[0].split()[-1].strip('"'), executemany))

    journal.record(batch, messages)
    event.remove(journal.db.engine, "before_cursor_execute", _seen)

    by_copy = journal.db.dialect == "postgresql"
    assert inserts == [("transactions", True)] + ([] if by_copy else [("messages", True)])
    assert transaction_count(journal) == 300
    assert len(messages_of(journal, "000000000300")) == len(trail(batch[-1]))
    assert journal.max_rrn() == "000000000300"


def test_max_rrn_is_none_until_something_is_journalled(journal: Journal) -> None:
    assert journal.max_rrn() is None
    journal.record([transaction("000000000999", "000999"), transaction("000000001000", "001000")], [])
    journal.record([transaction("000000000998", "000998")], [])
    assert journal.max_rrn() == "000000001000"


# -- terminals and working keys ----------------------------------------------------------------


def test_terminals_are_registered_once(journal: Journal) -> None:
    bni, bri = terminal("BNI00001"), terminal("BRI00001", "bri")
    assert journal.ensure_terminals([bni, bri, bni], AT) == 2
    changed = terminal("BNI00001", tmk="22" * 16)
    assert journal.ensure_terminals([changed, terminal("BNI00002")], AT + timedelta(days=1)) == 1

    assert journal.terminal("BNI00001") == bni  # the known terminal is left as it was
    assert journal.terminal("BNI00099") is None
    assert [t.tid for t in journal.terminals()] == ["BNI00001", "BNI00002", "BRI00001"]


def test_the_newest_key_exchange_of_each_terminal_wins(journal: Journal) -> None:
    journal.ensure_terminals([terminal("BNI00001"), terminal("BNI00002"), terminal("BNI00003")], AT)
    assert journal.latest_working_keys() == {}
    journal.append_working_keys("BNI00001", "A1" * 16, "B1" * 16, AT)
    journal.append_working_keys("BNI00002", "A2" * 16, "B2" * 16, AT)
    journal.append_working_keys("BNI00001", "C1" * 16, "D1" * 16, AT + timedelta(hours=8))

    assert journal.latest_working_keys() == {"BNI00001": ("C1" * 16, "D1" * 16), "BNI00002": ("A2" * 16, "B2" * 16)}


# -- store and forward -------------------------------------------------------------------------


def test_a_reversal_stays_pending_until_the_bank_acknowledges_it(journal: Journal) -> None:
    body = {"terminal_id": "BNI00001", "stan": "000070", "pan": BNI_PAN, "amount_idr": 25_000}
    first = journal.enqueue_saf("000000000070", "bni", body, AT)
    second = journal.enqueue_saf("000000000071", "bri", {**body, "pan": BRI_PAN}, AT + timedelta(seconds=1))
    [a, b] = journal.pending_saf()
    assert (a.id, a.rrn, a.bank_code, a.body, a.created_at, a.attempts, a.last_error) == (first, "000000000070", "bni", body, AT, 0, None)
    assert b.id == second

    journal.record_saf_attempt(first, "error", "connect timeout", AT + timedelta(seconds=5))
    journal.record_saf_attempt(first, "error", "HTTP 503", AT + timedelta(seconds=10))
    [a, _] = journal.pending_saf()
    assert (a.attempts, a.last_error) == (2, "HTTP 503")

    journal.record_saf_attempt(first, "ack", "rc 00", AT + timedelta(seconds=15))
    assert [e.id for e in journal.pending_saf()] == [second]
    assert journal.pending_saf(limit=0) == []
    with pytest.raises(ValueError, match="ack, error"):
        journal.record_saf_attempt(second, "maybe", None, AT)


def test_pending_saf_is_oldest_first_and_limited(journal: Journal) -> None:
    ids = [journal.enqueue_saf(f"{n:012d}", "bni", {"n": n}, AT + timedelta(seconds=n)) for n in range(5)]
    journal.record_saf_attempt(ids[1], "ack", None, AT)
    assert [e.id for e in journal.pending_saf(limit=3)] == [ids[0], ids[2], ids[3]]


# -- migrations ----------------------------------------------------------------------------------


def differences(db: Database, metadata: MetaData) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_migrated_database_matches_the_tables(journal: Journal) -> None:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    with journal.db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head == "0007"
    assert differences(journal.db, Base.metadata) == []

    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["transactions"].append_column(Column("channel", String(10), nullable=True))
    assert [(d[0], d[2], d[3].name) for d in differences(journal.db, drifted)] == [("add_column", "transactions", "channel")]

    journal.migrate()  # again: nothing to do
    assert differences(journal.db, Base.metadata) == []


def test_check_constraints_alembic_does_not_compare_are_there(journal: Journal) -> None:
    inspector = inspect(journal.db.engine)
    for name, table in Base.metadata.tables.items():
        declared = {c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"}
        found = {c["name"] for c in inspector.get_check_constraints(name)}
        assert declared <= found, (name, declared, found)
    [key] = [u for u in inspector.get_unique_constraints("transactions") if u["name"] == "uq_transactions_key"]
    assert key["column_names"] == ["tid", "stan", "transmission_date", "kind"]
