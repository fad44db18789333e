"""No card number rests in clear: cards are found by a keyed hash of the PAN, shown masked, and
the PAN itself is kept only sealed (AES-GCM). Migration 0002 carries a bank of 0001 (PANs in
clear) over with the bank's keys, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import String, event, insert, inspect, select, text

from shared.banks import get_bank
from shared.cards import make_pan, mask_pan
from shared.db import Database
from shared.keys import new_key

from bank_penyalur import migrate, registry, store
from bank_penyalur.hsm import Hsm, PanSealError
from bank_penyalur.runtime import BankRuntime, database_for, hsm_for
from bank_penyalur.schemas import InquiryCreate
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import (
    ACTIVATED,
    DISTRIBUTED,
    EMONEY,
    MERCHANT,
    PIN_SET,
    PRINTED,
    Account,
    Card,
    CardEvent,
    Kpm,
    Merchant,
    PinEvent,
)

BANK = get_bank("bni")
KEYS = {"pan_hash_key_hex": new_key().hex().upper(), "pan_key_hex": (new_key() + new_key()).hex().upper()}
AT = datetime(2026, 11, 3, 9)
MERCHANT_ID = "EWBNI0000000009"
PIN = "135790"


def clear_pans(db: Database) -> list[str]:
    """Every value of every text column of every table that contains a full PAN of the bank
    (its 6-digit IIN followed by digits); masked PANs and hashes do not."""
    hits = []
    inspector = inspect(db.engine)
    with db.read() as conn:
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if not isinstance(column["type"], String):
                    continue
                values = conn.execute(text(f'SELECT "{column["name"]}" FROM "{table}"')).scalars()
                hits += [f"{table}.{column['name']}={v}" for v in values if v and _holds_a_pan(v)]
    return hits


def _holds_a_pan(value: str) -> bool:
    start = value.find(BANK.iin)
    while start >= 0:
        if value[start : start + 16].isdigit() and len(value[start : start + 16]) == 16:
            return True
        start = value.find(BANK.iin, start + 1)
    return False


def sqlite_files(settings: BankSettings) -> list[Path]:
    return sorted(Path(settings.data_dir).glob("bank_bni.sqlite3*"))


def test_the_hsm_hashes_and_seals_card_numbers() -> None:
    hsm = Hsm(new_key().hex(), new_key().hex(), KEYS["pan_hash_key_hex"], KEYS["pan_key_hex"])
    pan = make_pan(BANK.iin, 42)
    assert hsm.pan_ref(pan) == hsm.pan_ref(pan) and len(hsm.pan_ref(pan)) == 64
    assert hsm.pan_ref(pan) != hsm.pan_ref(make_pan(BANK.iin, 43))
    sealed = [hsm.encrypt_pan(pan) for _ in range(2)]
    assert sealed[0] != sealed[1] and pan not in sealed[0]  # a fresh nonce each time
    assert [hsm.decrypt_pan(s) for s in sealed] == [pan, pan]
    other = Hsm(new_key().hex(), new_key().hex(), new_key().hex(), new_key().hex())
    assert other.pan_ref(pan) != hsm.pan_ref(pan)
    with pytest.raises(PanSealError):
        other.decrypt_pan(sealed[0])
    with pytest.raises(PanSealError):
        hsm.decrypt_pan(sealed[0][:-4] + "AAAA")


def test_a_seeded_bank_holds_no_clear_pan(bank) -> None:  # noqa: ANN001
    """Demo generator, replacements and authorisations: only hashes, masks and sealed PANs."""
    bank.purchase("normal", 10_000)
    bank.inquiry("normal", pin="000000")
    assert clear_pans(bank.runtime.db) == []
    hsm = bank.runtime.hsm
    with bank.runtime.db.read() as conn:
        rows = conn.execute(select(Card.pan_ref, Card.pan_masked, Card.pan_sealed)).all()
    pans = [hsm.decrypt_pan(sealed) for _, _, sealed in rows]
    assert all(ref == hsm.pan_ref(pan) and masked == mask_pan(pan) for (ref, masked, _), pan in zip(rows, pans))
    assert {c.pan for c in bank.cards.values()} <= set(pans)


def _seed_revision_0001(db: Database, hsm: Hsm, count: int) -> list[str]:
    """A bank as revision 0001 kept it: cards with their PAN in clear, activated with a PIN."""
    pans = [make_pan(BANK.iin, serial) for serial in range(1, count + 1)]
    region = {"province": "Jawa Barat", "regency": "Kabupaten Bandung", "district": "Soreang", "village": "Soreang"}
    with db.begin() as conn:
        conn.execute(insert(Merchant), [{"id": MERCHANT_ID, "name": "e-Warong Uji", "registered_at": AT, **region}])
        conn.execute(insert(Account), [{"kind": MERCHANT, "account_no": f"M{MERCHANT_ID}", "merchant_id": MERCHANT_ID, "opened_at": AT}])
        for n, pan in enumerate(pans, start=1):
            nik = f"3204{n:012d}"
            kpm_id = conn.execute(
                insert(Kpm).returning(Kpm.id),
                [{"nik": nik, "kk_number": nik, "name": f"KPM {n}", "pkh": False, "first_period": "2026-01", "registered_at": AT, **region}],
            ).scalar_one()
            conn.execute(insert(Account), [{"kind": EMONEY, "account_no": f"88{kpm_id:010d}01", "kpm_id": kpm_id, "opened_at": AT}])
            card_id = conn.execute(
                text("INSERT INTO cards (pan, kpm_id, issued_at) VALUES (:pan, :kpm, :at) RETURNING id"),
                {"pan": pan, "kpm": kpm_id, "at": AT},
            ).scalar_one()
            events = [{"card_id": card_id, "status": s, "actor": "test", "at": AT} for s in (PRINTED, DISTRIBUTED, ACTIVATED)]
            conn.execute(insert(CardEvent), events)
            conn.execute(insert(PinEvent), [{"card_id": card_id, "kind": PIN_SET, "pvv": hsm.pvv_for(pan, PIN), "actor": "test", "at": AT}])
    return pans


@pytest.fixture
def settings(storage) -> BankSettings:  # noqa: ANN001
    return BankSettings(bank="bni", **storage, **KEYS)


def test_migration_0002_carries_clear_cards_over(settings: BankSettings, clock) -> None:  # noqa: ANN001
    hsm = hsm_for(settings)
    db = database_for(settings)
    migrate.upgrade(db, "0001")
    pans = _seed_revision_0001(db, hsm, count=30)
    assert len(clear_pans(db)) == 30  # the scan sees clear PANs where there are some
    if db.dialect == "sqlite":  # and so does the scan of the files
        assert any(pans[0].encode() in path.read_bytes() for path in sqlite_files(settings))

    with pytest.raises(RuntimeError, match="hsm"):
        migrate.upgrade(db)  # cards to carry over and no keys: refused, nothing changed
    assert len(clear_pans(db)) == 30

    migrate.upgrade(db, hsm=hsm)
    assert clear_pans(db) == []
    if db.dialect == "sqlite":  # nor in the file's free pages or its write-ahead log
        for path in sqlite_files(settings):
            assert not any(pan.encode() in path.read_bytes() for pan in pans), path
    db.dispose()

    runtime = BankRuntime.start(settings, clock=clock)
    try:
        with runtime.db.read() as conn:
            for pan in pans:
                record = registry.card_record(conn, runtime.hsm, pan)
                assert record is not None and record.pan_masked == mask_pan(pan) and record.status == ACTIVATED
                state = store.card_state(conn, runtime.hsm.pan_ref(pan))
                assert state is not None and runtime.hsm.verify(pan, runtime.hsm.encipher_pin(pan, PIN), state.pvv)
            assert registry.card_record(conn, runtime.hsm, make_pan(BANK.iin, 31)) is None
        answer = runtime.authoriser.inquiry(
            InquiryCreate(
                terminal_id="EDC00001", stan="000001", transmission_date=AT.date(), merchant_id=MERCHANT_ID,
                pan=pans[7], pin_block=runtime.hsm.encipher_pin(pans[7], PIN),
            )
        )
        assert answer.rc == "00" and answer.balance_idr == 0
        with runtime.db.begin() as conn:  # the next card continues the serials of the migrated ones
            kpm_id = conn.execute(select(Card.kpm_id).where(Card.pan_ref == runtime.hsm.pan_ref(pans[0]))).scalar_one()
            [(_, new_pan)] = registry.print_cards(conn, BANK, runtime.hsm, [kpm_id], AT, "test")
        assert new_pan == make_pan(BANK.iin, 31)
        assert clear_pans(runtime.db) == []
    finally:
        runtime.close()


def test_migration_0002_goes_back_with_the_keys(settings: BankSettings) -> None:
    hsm = hsm_for(settings)
    db = database_for(settings)
    migrate.upgrade(db, "0001")
    pans = _seed_revision_0001(db, hsm, count=3)
    migrate.upgrade(db, hsm=hsm)
    migrate.downgrade(db, "0001", hsm=hsm)
    with db.read() as conn:
        assert conn.execute(text("SELECT pan FROM cards ORDER BY id")).scalars().all() == pans
    migrate.upgrade(db, hsm=hsm)
    assert clear_pans(db) == []
    db.dispose()


def test_cards_of_other_keys_are_not_found(settings: BankSettings, clock) -> None:  # noqa: ANN001
    """The lookup is keyed: a bank started with another PAN hash key finds none of the cards."""
    db = database_for(settings)
    migrate.upgrade(db, "0001")
    [pan] = _seed_revision_0001(db, hsm_for(settings), count=1)
    migrate.upgrade(db, hsm=hsm_for(settings))
    db.dispose()
    other = settings.model_copy(update={"pan_hash_key_hex": new_key().hex()})
    runtime = BankRuntime.start(other, clock=clock)
    try:
        with runtime.db.read() as conn:
            assert registry.card_record(conn, runtime.hsm, pan) is None
    finally:
        runtime.close()


@pytest.mark.parametrize("storage", ["sqlite"], indirect=True)  # PostgreSQL: test_query_plans.py
@pytest.mark.parametrize("lookup", ["card_state", "card_id_by_pan_ref"])
def test_sqlite_finds_cards_by_pan_reference_through_its_index(bank, lookup: str) -> None:  # noqa: ANN001
    """The statement the lookup really runs, explained: a search of the unique pan_ref index."""
    executed: list[tuple[str, tuple]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        executed.append((statement, parameters))

    engine = bank.runtime.db.read_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with bank.runtime.db.read() as conn:
            ref = bank.runtime.hsm.pan_ref(bank.cards["normal"].pan)
            assert getattr(store, lookup)(conn, ref) is not None
            if lookup == "card_state":  # a compiled statement, run on the driver's cursor
                compiled = store._CARD_STATE_BY_PAN_REF_FAST.on(conn)
                executed.append((compiled.sql, compiled.parameters({"ref": ref})))
            [(sql, params)] = [(q, p) for q, p in executed if "pan_ref" in q]
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert re.search(r"SEARCH cards USING (COVERING )?INDEX sqlite_autoindex_cards_\d \(pan_ref=\?\)", plan), plan
