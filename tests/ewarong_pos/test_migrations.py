"""The Alembic migrations build exactly the tables of `ewarong_pos.tables` on an empty SQLite
file and an empty PostgreSQL schema; upgrading an up-to-date database does nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError

from ewarong_pos import migrate
from ewarong_pos.settings import ShopSettings
from ewarong_pos.store import database_for
from ewarong_pos.tables import metadata
from shared.db import Database


@pytest.fixture
def db(storage: dict) -> Iterator[Database]:
    database = database_for(ShopSettings(**storage))
    yield database
    database.dispose()


def test_an_empty_database_is_brought_to_head_matching_the_tables(db: Database) -> None:
    assert set(inspect(db.engine).get_table_names()) == set()
    migrate.upgrade(db)
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head == "0002"
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []


def test_checks_and_the_partial_unique_index_are_there(db: Database) -> None:
    migrate.upgrade(db)
    inspector = inspect(db.engine)
    for name, table in metadata.tables.items():
        declared = {c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"}
        assert declared <= {c["name"] for c in inspector.get_check_constraints(name)}, name
    [closed] = [i for i in inspector.get_indexes("payment_events") if i["name"] == "uq_payment_events_closed"]
    assert closed["unique"] and "sent" in str(closed["dialect_options"].get(f"{db.dialect}_where"))


def test_upgrading_again_runs_no_ddl(db: Database) -> None:
    migrate.upgrade(db)
    statements: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    migrate.upgrade(db)
    event.remove(db.engine, "before_cursor_execute", _record)
    assert statements and not [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))]


def test_a_shop_of_0001_keeps_its_books_and_takes_voids_after_0002(db: Database) -> None:
    migrate.upgrade(db, "0001")
    at = "2026-11-03 09:00:00"
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO ewarongs (id, bank_code, name, opened_at) VALUES ('EWBNI0000000001', 'bni', 'e-Warong', :at)"), {"at": at})
        conn.execute(
            text("INSERT INTO stock_movements (ewarong_id, sku, qty_delta, kind, at) VALUES ('EWBNI0000000001', 'BRS-MED', 50, 'receipt', :at)"),
            {"at": at},
        )
        with pytest.raises(IntegrityError):  # 0001 knows no void
            with conn.begin_nested():
                conn.execute(
                    text("INSERT INTO stock_movements (ewarong_id, sku, qty_delta, kind, at) VALUES ('EWBNI0000000001', 'BRS-MED', 1, 'void', :at)"),
                    {"at": at},
                )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT sku, qty_delta, kind FROM stock_movements")).all() == [("BRS-MED", 50, "receipt")]
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
    config = migrate.alembic_config()  # and back: the void table goes, the receipts stay
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
        conn.commit()
    with db.engine.connect() as conn:
        assert "sale_voids" not in inspect(db.engine).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM stock_movements")).scalar_one() == 1
