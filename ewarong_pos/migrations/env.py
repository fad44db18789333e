"""Alembic environment: migrations run on the connection handed over by `ewarong_pos.migrate`."""

from ewarong_pos.tables import metadata
from shared.migrate import run_migrations

run_migrations(metadata)
