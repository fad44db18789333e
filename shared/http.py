"""Error answers every HTTP API of the network gives alike: clear JSON, never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError


def add_storage_error_handlers(app: FastAPI, log: logging.Logger, database: str) -> None:
    """422 for a value the database cannot hold, 503 when the database is away, 500 (logged,
    nothing applied) for anything unexpected. `database` names it in the answers."""

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold; nothing was stored.
        log.warning("refused a value the %s cannot hold: %s", database, exc.orig)
        return JSONResponse({"detail": "a value in the request cannot be used (control characters?)"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("%s unavailable: %s", database, exc.orig)
        return JSONResponse({"detail": f"{database} unavailable, try again"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the request was not applied"}, status_code=500)
