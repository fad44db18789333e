"""Tokens for the switch's ops API in tests: issued straight into the switch's database, as
`sembako ops token create` does, and clients that send them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from shared.db import Database
from switch.journal import Journal
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.tables import ADMIN

ISSUED_AT = datetime(2026, 11, 1, 8, 0, 0)  # before every test's business time: valid from then on


def issue(db: Database, role: str = ADMIN, bank: str | None = None, at: datetime = ISSUED_AT,
          expires_in: timedelta | None = None, actor: str = access.CLI_ACTOR) -> str:
    """A new token (role, scope: `bank` or None for the switch operator)."""
    with db.begin() as conn:
        return access.create_token(conn, role, bank, f"test {role} {bank or 'switch'}", actor, at, expires_in).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ops_client(journal: Journal, role: str = ADMIN, bank: str | None = None, raise_server_exceptions: bool = True,
               **app_options: Any) -> TestClient:  # noqa: ANN401
    """A client of an ops API on `journal` that sends a token (default: the switch operator's admin)."""
    app = create_ops_app(journal, **app_options)
    return TestClient(app, headers=bearer(issue(journal.db, role, bank)), raise_server_exceptions=raise_server_exceptions)
