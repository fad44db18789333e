"""Alembic environment: migrations run on the connection handed over by `switch.migrate`."""

from switch.tables import Base
from shared.migrate import run_migrations

run_migrations(Base.metadata)
