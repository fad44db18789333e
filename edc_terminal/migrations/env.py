"""Alembic environment of the EDC batch store: migrations run on the connection handed over by
`edc_terminal.batchstore`."""

from edc_terminal.batchstore import metadata
from shared.migrate import run_migrations

run_migrations(metadata)
