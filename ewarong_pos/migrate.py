"""Schema migrations (Alembic) of this service's database, in `migrations/`."""

from __future__ import annotations

from pathlib import Path

from shared.db import Database
from shared.migrate import Migrations

MIGRATIONS = Migrations(Path(__file__).parent / "migrations")


def alembic_config():  # noqa: ANN201
    return MIGRATIONS.config()


def upgrade(db: Database, revision: str = "head") -> None:
    MIGRATIONS.upgrade(db, revision)
