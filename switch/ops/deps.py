"""Request dependencies: the journal, a read connection, the live statistics provider and
whether the switch runs on demo keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from switch.journal import Journal


def get_journal(request: Request) -> Journal:
    return request.app.state.journal


OpsJournal = Annotated[Journal, Depends(get_journal)]


def _read_conn(journal: OpsJournal) -> Iterator[Connection]:
    with journal.db.read() as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(_read_conn)]


def get_stats_provider(request: Request) -> Callable[[], dict] | None:
    return request.app.state.stats_provider


StatsProvider = Annotated[Callable[[], dict] | None, Depends(get_stats_provider)]


def get_demo_keys(request: Request) -> bool | None:
    """Whether the running switch uses public demo keys (set by `SwitchRuntime`); None: unknown."""
    return getattr(request.app.state, "demo_keys", None)


DemoKeys = Annotated[bool | None, Depends(get_demo_keys)]
