"""The bank's HTTP application: one router per resource, errors as clear JSON."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.http import add_storage_error_handlers

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

    add_storage_error_handlers(app, log, "database")
