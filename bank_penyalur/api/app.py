"""The bank's HTTP application: one router per resource, errors as clear JSON."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError

from bank_penyalur.api.routes import (
    authorisations,
    cards,
    disbursements,
    health,
    kpm,
    merchants,
    ops,
    reports,
)
from bank_penyalur.lifecycle import TransitionError
from bank_penyalur.runtime import BankRuntime

log = logging.getLogger("bank_penyalur")


def create_app(runtime: BankRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Few DB threads: more only contend for the GIL while waiting on the database.
        anyio.to_thread.current_default_thread_limiter().total_tokens = runtime.settings.worker_threads
        yield

    app = FastAPI(
        lifespan=lifespan,
        title=f"Bank penyalur {runtime.bank.name} ({runtime.bank.code.upper()})",
        description="KPM accounts, KKS cards, e-money ledger and authorisation for Program Sembako.",
        version="0.1.0",
    )
    app.state.runtime = runtime
    for module in (health, authorisations, kpm, merchants, cards, ops, disbursements, reports):
        app.include_router(module.router)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TransitionError)
    async def _transition(_: Request, exc: TransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold; nothing was stored.
        log.warning("refused unstorable value: %s", exc.orig)
        return JSONResponse({"detail": "a value in the request cannot be stored (control characters?)"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse({"detail": "database unavailable, try again"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the request was not applied"}, status_code=500)
