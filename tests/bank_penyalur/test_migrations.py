"""The Alembic migrations build exactly the schema that `tables.py` describes, on SQLite and
PostgreSQL, and running them again on an up-to-date database does nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, event, insert, inspect, select, text

from bank_penyalur import migrate
from shared.db import Database
from bank_penyalur.runtime import database_for
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import Base, Merchant

DDL = ("CREATE", "ALTER", "DROP")


@pytest.fixture
def db(storage) -> Iterator[Database]:  # noqa: ANN001
    database = database_for(BankSettings(bank="bni", **storage))
    migrate.upgrade(database)
    yield database
    database.dispose()


def differences(db: Database, metadata: MetaData) -> list:
    with db.engine.connect() as conn:
        # compare_type: column types must match too. Server defaults are not compared: the
        # tables declare none (defaults such as `pkh=False` are Python-side), so there is
        # nothing to compare and only reflection noise to gain.
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def head_revision() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrated_database_matches_the_tables(db: Database) -> None:
    assert current_revision(db) == head_revision()
    assert differences(db, Base.metadata) == []


def test_the_comparison_would_see_a_missing_column(db: Database) -> None:
    """Guard for the test above: a drift between tables and database is reported."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["kpm"].append_column(Column("phone", String(20), nullable=True))
    diffs = differences(db, drifted)
    assert [(d[0], d[2], d[3].name) for d in diffs if isinstance(d, tuple)] == [("add_column", "kpm", "phone")]


def test_constraints_alembic_does_not_compare_are_there_too(db: Database) -> None:
    """Autogenerate ignores CHECK constraints and partial-index predicates; check them here."""
    inspector = inspect(db.engine)
    for name, table in Base.metadata.tables.items():
        declared = {c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"}
        found = {c["name"] for c in inspector.get_check_constraints(name)}
        assert declared <= found, (name, declared, found)
    [partial] = [i for i in inspector.get_indexes("transfers") if i["name"] == "uq_transfers_disbursement"]
    assert partial["unique"] and partial["column_names"] == ["credit_account_id", "period"]
    where = partial["dialect_options"].get(f"{db.dialect}_where")
    assert where is not None and "disbursement" in str(where), partial


def test_upgrading_twice_changes_nothing(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(Merchant).values(
                id="EWBNI0000000001", name="e-Warong Sejahtera Bersama", province="Jawa Barat",
                regency="Kabupaten Bandung", district="Soreang", village="Soreang",
                registered_at=datetime(2026, 11, 3, 9),
            )
        )
    statements: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement)

    migrate.upgrade(db)
    migrate.upgrade(db)
    event.remove(db.engine, "before_cursor_execute", _record)

    assert statements, "the upgrade did not even read the version table"
    assert [s for s in statements if s.lstrip().upper().startswith(DDL)] == []
    assert not any("INSERT" in s.upper() or "UPDATE" in s.upper() for s in statements)
    assert current_revision(db) == head_revision()
    with db.read() as conn:
        assert conn.execute(select(Merchant.name)).scalars().all() == ["e-Warong Sejahtera Bersama"]
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert differences(db, Base.metadata) == []
