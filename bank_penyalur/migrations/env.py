"""Alembic environment: migrations run on the connection handed over by `bank_penyalur.migrate`."""

from bank_penyalur.tables import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
