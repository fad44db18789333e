"""Request dependencies: the bank runtime and open connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from bank_penyalur.runtime import BankRuntime


async def get_runtime(request: Request) -> BankRuntime:
    """Async on purpose: a plain attribute read must not cost a hop to the thread pool."""
    return request.app.state.runtime


Runtime = Annotated[BankRuntime, Depends(get_runtime)]


def _write_conn(runtime: Runtime) -> Iterator[Connection]:
    with runtime.db.begin() as conn:
        yield conn


def _read_conn(runtime: Runtime) -> Iterator[Connection]:
    with runtime.db.read() as conn:
        yield conn


WriteConn = Annotated[Connection, Depends(_write_conn)]
ReadConn = Annotated[Connection, Depends(_read_conn)]
