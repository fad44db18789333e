"""Schema migrations (Alembic) of this service's database, in `migrations/`.

Revisions that must encipher data (0003 seals the card numbers of stored reversals) take the
key from the Alembic config's attributes: `PAN_KEY_ATTRIBUTE` holds the PAN key (hex) in effect.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command

from shared.db import Database
from shared.migrate import Migrations
from switch.hsm import demo_pan_key_hex

MIGRATIONS = Migrations(Path(__file__).parent / "migrations")
PAN_KEY_ATTRIBUTE = "switch_pan_key_hex"


def alembic_config():  # noqa: ANN201
    return MIGRATIONS.config()


def upgrade(db: Database, revision: str = "head", pan_key_hex: str | None = None) -> None:
    """Migrate to `revision`; clear card numbers of older rows are sealed under `pan_key_hex`
    (default: the demo PAN key, as a switch with no key set)."""
    _run(command.upgrade, db, revision, pan_key_hex)


def downgrade(db: Database, revision: str, pan_key_hex: str | None = None) -> None:
    _run(command.downgrade, db, revision, pan_key_hex)


def _run(step, db: Database, revision: str, pan_key_hex: str | None) -> None:  # noqa: ANN001
    config = MIGRATIONS.config()
    config.attributes[PAN_KEY_ATTRIBUTE] = pan_key_hex or demo_pan_key_hex()
    with db.engine.connect() as conn:
        config.attributes["connection"] = conn
        step(config, revision)
        conn.commit()
    if db.engine.dialect.name == "sqlite":
        # Older versions of rewritten pages (0003 seals clear card numbers) stay in the WAL
        # until a checkpoint: copy the new ones into the file and empty the WAL now.
        # Outside any transaction (SQLAlchemy would BEGIN one): on the driver's connection.
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            raw.close()
