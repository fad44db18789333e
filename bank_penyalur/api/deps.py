"""Request dependencies: the bank runtime and open connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from bank_penyalur.runtime import BankRuntime


def get_runtime(request: Request) -> BankRuntime:
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
