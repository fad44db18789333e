"""The Alembic migrations build exactly the tables of `ewarong_pos.tables` on an empty SQLite
file and an empty PostgreSQL schema; upgrading an up-to-date database does nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect

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
        assert MigrationContext.configure(conn).get_current_revision() == head == "0001"
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
