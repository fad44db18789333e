"""Alembic migrations run programmatically, for any service that owns a database.

A service keeps its revisions in its own `migrations/` folder; its `env.py` calls
`run_migrations(metadata)`, and its code calls `Migrations(folder).upgrade(db)`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from shared.db import Database

# Constraint and index names that are the same on SQLite and PostgreSQL, so that migrations
# generated on one apply to the other.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Migrations:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        return config

    def upgrade(self, db: Database, revision: str = "head") -> None:
        config = self.config()
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()

    def autogenerate(self, db: Database, message: str) -> None:
        """Write a new revision from the difference between the tables and the database."""
        config = self.config()
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.revision(config, message=message, autogenerate=True)


def run_migrations(metadata: MetaData) -> None:
    """The body of a service's Alembic env.py: migrate on the connection handed over."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
