"""Shared fixtures: a bank on SQLite and on the real PostgreSQL, with an injected clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from shared.clock import FixedClock
from shared.db import normalise_url

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BUSINESS_START = datetime(2026, 11, 3, 9, 0, 0)  # a Tuesday morning, WIB


def postgres_url() -> str:
    return normalise_url(os.environ.get("DATABASE_URL") or PG_DEFAULT_URL)


def _postgres_unavailable_reason() -> str | None:
    url = postgres_url()
    if not url.startswith("postgresql"):
        return f"DATABASE_URL is not PostgreSQL ({url.split(':')[0]})"
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means no server to test against
        return f"PostgreSQL not reachable at {url}: {type(exc).__name__}"
    finally:
        engine.dispose()
    return None


_PG_REASON: list[str | None] = []


def pg_skip_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_postgres_unavailable_reason())
    return _PG_REASON[0]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(BUSINESS_START)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage(request, tmp_path) -> Iterator[dict]:  # noqa: ANN001
    """Settings overrides that put a bank on SQLite (a temp file) or PostgreSQL (a temp schema)."""
    if request.param == "sqlite":
        yield {"data_dir": tmp_path}
        return
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield {"data_dir": tmp_path, "database_url": postgres_url(), "db_schema": schema}
    engine = create_engine(postgres_url())
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
