"""Searching the journal by card number, on SQLite and PostgreSQL: by a keyed hash of the full
PAN, never by its masked form (two cards of one bank with the same last four digits share it),
and what migration 0002 does with rows journalled before the hash existed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from shared.banks import get_bank
from shared.cards import make_pan, mask_pan
from shared.db import Database, sqlite_url
from switch import migrate
from switch.hsm import PanHasher, SwitchHsm
from switch.journal import TRANSACTION_FIELDS, Journal
from tests.switch.ops_tokens import ops_client
from switch.tables import Transaction
from tests.switch.test_journal import PAN_HASH, transaction

BNI = get_bank("bni").iin
SITI = make_pan(BNI, 10_001)
# Another BNI card with the same first six and last four digits: the same masked PAN.
TWIN = next(p for n in range(10_002, 10_000_000) if (p := make_pan(BNI, n))[-4:] == SITI[-4:])
REAL_KEY_HEX = "5A" * 32


def test_twin_cards_share_the_masked_form() -> None:
    assert TWIN != SITI and mask_pan(TWIN) == mask_pan(SITI)


# -- the hash -----------------------------------------------------------------------------------


def test_the_pan_hash_is_keyed_and_only_for_card_numbers() -> None:
    demo, real = PanHasher(), PanHasher(REAL_KEY_HEX)
    assert demo(SITI) == PAN_HASH(SITI) and len(demo(SITI)) == 64
    assert demo(SITI) != demo(TWIN)
    assert real(SITI) != demo(SITI)  # a different key, a different search key
    assert SwitchHsm("11" * 16, {}, REAL_KEY_HEX).pan_hash(SITI) == real(SITI)
    for not_a_card in ("", mask_pan(SITI), SITI[:12], SITI + "0" * 4, "９" * 16, f"{SITI[:-1]}x"):
        assert demo(not_a_card) is None, not_a_card


# -- the ops API ----------------------------------------------------------------------------------


def open_journal(storage: dict, pan_hash: PanHasher | None = None) -> Journal:
    url = storage.get("database_url") or sqlite_url(storage["data_dir"], "switch")
    return Journal(Database(url, schema=storage.get("db_schema")), pan_hash)


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    opened.migrate()
    yield opened
    opened.db.dispose()


def found(client: TestClient, **params: str) -> list[str]:
    response = client.get("/v1/transactions", params=params)
    assert response.status_code == 200, response.text
    return [item["rrn"] for item in response.json()["items"]]


def test_a_card_is_found_by_its_full_number_and_never_its_twin(journal: Journal) -> None:
    journal.record([transaction("000000000001", "000001", pan=SITI), transaction("000000000002", "000002", pan=TWIN)], [])
    client = ops_client(journal)
    assert found(client, pan=SITI) == ["000000000001"]
    assert found(client, pan=TWIN) == ["000000000002"]
    assert found(client, pan=make_pan(BNI, 42)) == []


def test_masked_or_malformed_card_numbers_are_refused(journal: Journal) -> None:
    client = ops_client(journal)
    for pan in (mask_pan(SITI), SITI[:12], SITI + "1234", "kartu siti", "9360-0009-1234", f"{SITI[:-1]}A"):
        response = client.get("/v1/transactions", params={"pan": pan})
        assert response.status_code == 422, pan
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["query", "pan"] and "full card number" in problem["msg"]
        assert pan not in response.text


def test_the_search_uses_the_key_the_rows_were_written_with(storage) -> None:  # noqa: ANN001
    real = PanHasher(REAL_KEY_HEX)
    journal = open_journal(storage, real)
    journal.migrate()
    journal.record([transaction("000000000001", "000001", pan=SITI, pan_hash=real(SITI))], [])
    assert found(ops_client(journal), pan=SITI) == ["000000000001"]
    demo_keyed = Journal(journal.db)  # same rows, searched under the demo key: nothing matches
    assert found(ops_client(demo_keyed), pan=SITI) == []
    journal.db.dispose()


# -- migration 0002 ---------------------------------------------------------------------------------


def test_migration_0002_keeps_old_rows_without_a_hash(storage) -> None:  # noqa: ANN001
    """Rows of 0001 keep everything they had; their hash is NULL, so a PAN search does not find
    them (documented), while the rows journalled after the upgrade are found."""
    journal = open_journal(storage)
    migrate.upgrade(journal.db, "0001")
    old = transaction("000000000001", "000001", pan=SITI)
    old_values = {name: getattr(old, name) for name in TRANSACTION_FIELDS if name not in ("pan_hash", "batch")}
    with journal.db.begin() as conn:
        conn.execute(insert(Transaction.__table__), [old_values])

    journal.migrate()
    journal.record([transaction("000000000002", "000002", pan=SITI)], [])
    with journal.db.read() as conn:
        rows = conn.execute(select(Transaction.rrn, Transaction.pan_masked, Transaction.pan_hash).order_by(Transaction.id)).all()
    assert rows == [("000000000001", mask_pan(SITI), None), ("000000000002", mask_pan(SITI), PAN_HASH(SITI))]
    assert journal.find(old.tid, old.stan, old.transmission_date, old.kind) == old.__class__(**old_values)
    assert found(ops_client(journal), pan=SITI) == ["000000000002"]

    _downgrade(journal.db, "0001")  # and back: the rows stay, without the column
    with journal.db.read() as conn:
        assert conn.exec_driver_sql("SELECT rrn FROM transactions ORDER BY id").scalars().all() == ["000000000001", "000000000002"]
    journal.db.dispose()


def _downgrade(db: Database, revision: str) -> None:
    config = migrate.alembic_config()
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()
