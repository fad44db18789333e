"""Store-and-forward reversals keep their card number only sealed (AES-GCM under the switch's
PAN key), on SQLite and PostgreSQL: the stored row holds the PAN masked and sealed, a retry opens
it to name the card, another key cannot, and migration 0003 seals the rows stored in clear
before it. (The retry reaching a real bank: tests/switch/test_end_to_end.py, frozen bank.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import insert, select, text

from shared.banks import get_bank
from shared.cards import make_pan, mask_pan
from shared.db import Database, sqlite_url
from switch import migrate
from switch.bank_client import BankReply
from switch.core import reversal_body
from switch.hsm import PanCipher, PanSealError, SwitchHsm
from switch.journal import Journal, saf_context
from switch.saf import SafForwarder
from switch.settings import SwitchSettings
from switch.tables import SafEntryRow

AT = datetime(2026, 11, 3, 9, 0, 0)
PAN = make_pan(get_bank("bni").iin, 4_242)
REAL_KEY_HEX = "3C" * 32
BODY = reversal_body("BNI00001", "EWBNI0000000001", PAN, 25_000, "000123", date(2026, 11, 3))


def open_journal(storage: dict, cipher: PanCipher | None = None, migrated: bool = True) -> Journal:
    url = storage.get("database_url") or sqlite_url(storage["data_dir"], "switch")
    journal = Journal(Database(url, schema=storage.get("db_schema")), pan_cipher=cipher)
    if migrated:
        journal.migrate()
    return journal


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage, PanCipher(REAL_KEY_HEX))
    yield opened
    opened.db.dispose()


def stored_rows(db: Database) -> list:
    with db.read() as conn:
        return conn.execute(select(SafEntryRow.__table__).order_by(SafEntryRow.id)).all()


def sqlite_file_bytes(storage: dict) -> bytes | None:
    if storage.get("database_url"):
        return None
    data_dir = storage["data_dir"]
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.name.startswith("switch.sqlite3"))


# -- the cipher ---------------------------------------------------------------------------------


def test_a_sealed_pan_opens_only_under_its_key_and_for_its_row() -> None:
    cipher = PanCipher(REAL_KEY_HEX)
    sealed = cipher.seal(PAN, "saf/000000000001")
    assert sealed.startswith("v1:") and PAN not in sealed
    assert sealed != cipher.seal(PAN, "saf/000000000001")  # a fresh nonce every time
    assert cipher.open(sealed, "saf/000000000001") == PAN
    for wrong in (lambda: PanCipher().open(sealed, "saf/000000000001"), lambda: cipher.open(sealed, "saf/000000000002")):
        with pytest.raises(PanSealError):
            wrong()
    with pytest.raises(PanSealError):
        cipher.open(sealed[:-4] + "AAAA", "saf/000000000001")
    assert SwitchHsm("11" * 16, {}, None, REAL_KEY_HEX).pan_cipher.open(sealed, "saf/000000000001") == PAN


def test_the_switch_settings_hand_the_pan_key_to_the_hsm_and_the_journal(tmp_path) -> None:  # noqa: ANN001
    from switch.runtime import SwitchRuntime

    runtime = SwitchRuntime(SwitchSettings(data_dir=tmp_path, pan_key_hex=REAL_KEY_HEX))
    try:
        sealed = runtime.journal.pan_cipher.seal(PAN, "x")
        assert PanCipher(REAL_KEY_HEX).open(sealed, "x") == PAN
        assert runtime.hsm.pan_cipher is runtime.journal.pan_cipher
    finally:
        runtime.db.dispose()


# -- the journal ----------------------------------------------------------------------------------


def test_a_stored_reversal_rests_sealed_and_comes_back_whole(journal: Journal, storage: dict) -> None:
    rrn = "000000000070"
    saf_id = journal.enqueue_saf(rrn, "bni", BODY, AT)
    [row] = stored_rows(journal.db)
    assert row.body == {**BODY, "pan": mask_pan(PAN)}
    assert PAN not in str(tuple(row)) and row.pan_sealed.startswith("v1:")
    assert PanCipher(REAL_KEY_HEX).open(row.pan_sealed, saf_context(rrn)) == PAN
    [entry] = journal.pending_saf()
    assert (entry.id, entry.body, entry.card_readable) == (saf_id, BODY, True)
    file_bytes = sqlite_file_bytes(storage)
    assert file_bytes is None or PAN.encode() not in file_bytes


def test_a_reversal_sealed_under_another_key_is_not_sent(journal: Journal, storage: dict) -> None:
    journal.enqueue_saf("000000000071", "bni", BODY, AT)
    other = Journal(journal.db, pan_cipher=PanCipher())  # the demo key: not the one it was sealed with
    [entry] = other.pending_saf()
    assert entry.card_readable is False and entry.body["pan"] == mask_pan(PAN)

    class Banks:
        sent: list = []

        async def send(self, bank_code: str, op: str, body: dict) -> BankReply:
            self.sent.append(body)
            return BankReply(rc="00", approval_code=None, balance_idr=None, latency_ms=1)

    banks = Banks()
    assert asyncio.run(SafForwarder(other, banks, lambda: AT, 10, 10).deliver_pending()) == 0
    assert banks.sent == [] and len(other.pending_saf()) == 1  # still owed, nothing sent
    assert asyncio.run(SafForwarder(journal, banks, lambda: AT, 10, 10).deliver_pending()) == 1
    assert banks.sent == [BODY] and journal.pending_saf() == []


# -- migration 0003 -------------------------------------------------------------------------------


def _old_row(journal: Journal, rrn: str, body: dict) -> None:
    """A SAF entry as the switch stored it before 0003: the bank request with the PAN in clear."""
    with journal.db.begin() as conn:
        columns = {"rrn": rrn, "bank_code": "bni", "body": body, "created_at": AT}
        conn.execute(insert(_saf_0002()), [columns])


def _saf_0002():  # noqa: ANN202
    from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table

    return Table(
        "saf_entries",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("rrn", String(12)),
        Column("bank_code", String(10)),
        Column("body", JSON),
        Column("created_at", DateTime),
    )


def test_migration_0003_seals_the_pans_stored_in_clear(storage: dict) -> None:
    journal = open_journal(storage, PanCipher(REAL_KEY_HEX), migrated=False)
    migrate.upgrade(journal.db, "0002")
    other_body = {**BODY, "pan": make_pan(get_bank("bni").iin, 777), "stan": "000124"}
    _old_row(journal, "000000000001", BODY)
    _old_row(journal, "000000000002", other_body)
    journal.migrate()  # under the journal's PAN key (handed over as an Alembic attribute)

    rows = stored_rows(journal.db)
    assert [r.body for r in rows] == [{**BODY, "pan": mask_pan(PAN)}, {**other_body, "pan": mask_pan(other_body["pan"])}]
    assert all(PAN not in str(tuple(r)) for r in rows)
    assert [e.body for e in journal.pending_saf()] == [BODY, other_body]
    file_bytes = sqlite_file_bytes(storage)
    assert file_bytes is None or PAN.encode() not in file_bytes  # no stale page keeps it

    # Back to 0002 gives the clear column back (under the same key), and up again seals it anew.
    migrate.downgrade(journal.db, "0002", pan_key_hex=REAL_KEY_HEX)
    with journal.db.read() as conn:
        assert conn.execute(select(_saf_0002().c.body).order_by(text("id"))).scalars().all() == [BODY, other_body]
    journal.migrate()
    assert [e.body for e in journal.pending_saf()] == [BODY, other_body]
    journal.db.dispose()


def test_migration_0003_refuses_to_guess_the_key(storage: dict) -> None:
    journal = open_journal(storage, migrated=False)
    migrate.upgrade(journal.db, "0002")
    _old_row(journal, "000000000001", BODY)
    config = migrate.alembic_config()  # plain Alembic, without the switch's PAN key
    with journal.db.engine.connect() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match="needs the switch's PAN key"):
            command.upgrade(config, "head")
    journal.migrate()  # through the switch: the demo key, as a switch with no key set
    assert [e.body for e in journal.pending_saf()] == [BODY]
    assert journal.pending_saf()[0].card_readable
    journal.db.dispose()


def test_migration_0003_leaves_an_empty_queue_alone(storage: dict) -> None:
    journal = open_journal(storage, migrated=False)
    migrate.upgrade(journal.db, "0002")
    config = migrate.alembic_config()  # no rows to seal: no key needed
    with journal.db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()
    assert journal.pending_saf() == []
    journal.enqueue_saf("000000000009", "bni", BODY, AT + timedelta(seconds=1))
    assert [e.body for e in journal.pending_saf()] == [BODY]
    journal.db.dispose()
