"""Schema migrations (Alembic) of this service's database, in `migrations/`.

Migrations that carry card numbers over (0002: clear PAN -> keyed hash, masked and sealed PAN)
need the bank's HSM: it is handed to them in `config.attributes["hsm"]`, next to the connection.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from sqlalchemy import Connection

from shared.db import Database
from shared.migrate import Migrations

if TYPE_CHECKING:
    from bank_penyalur.hsm import Hsm

MIGRATIONS = Migrations(Path(__file__).parent / "migrations")


def alembic_config():  # noqa: ANN201
    return MIGRATIONS.config()


def upgrade(db: Database, revision: str = "head", hsm: Hsm | None = None) -> None:
    """Bring the database to `revision`. `hsm` is needed when existing cards are carried over
    to a revision that keeps their numbers hashed and sealed; an empty bank migrates without."""
    _run(db, command.upgrade, revision, hsm)


def downgrade(db: Database, revision: str, hsm: Hsm | None = None) -> None:
    """Take the database back to `revision` (tests and emergencies; below 0002 card numbers
    are opened with `hsm` and rest in clear again)."""
    _run(db, command.downgrade, revision, hsm)


def _run(db: Database, step, revision: str, hsm: Hsm | None) -> None:  # noqa: ANN001
    config = MIGRATIONS.config()
    config.attributes["hsm"] = hsm
    with db.engine.connect() as conn, _sqlite_rebuild_mode(conn):
        config.attributes["connection"] = conn
        step(config, revision)
        conn.commit()


@contextmanager
def _sqlite_rebuild_mode(conn: Connection):  # noqa: ANN202
    """SQLite changes a table's constraints by copying it to a new table and dropping the old
    one. With foreign keys enforced, the drop fails while other tables refer to it; enforcement
    can only be switched outside a transaction, so it is switched off on the raw connection
    before Alembic begins and back on after (migrations that rebuild tables run PRAGMA
    foreign_key_check before they commit). Freed pages are zeroed (secure_delete) and the WAL
    is emptied afterwards, so that data a migration removed (clear card numbers) does not
    linger in the file."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute("PRAGMA secure_delete=ON")
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()  # a failed step: pragmas take effect outside a transaction only
        raw.execute("PRAGMA secure_delete=OFF")
        raw.execute("PRAGMA foreign_keys=ON")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
