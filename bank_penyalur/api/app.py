"""The bank's HTTP application: one router per resource, errors as clear JSON.

422 answers never echo the input (`shared.http`); request bodies are bounded, more tightly on
the authorisation endpoints (`auth_body_max_bytes`) than elsewhere (`body_max_bytes`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.http import BodySizeLimit, add_error_handlers, error_responses

from bank_penyalur.api.routes import (
    authorisations,
    cards,
    disbursements,
    health,
    kpm,
    merchants,
    offline,
    ops,
    postings,
    reports,
)
from bank_penyalur.api.routes import metrics as metrics_routes
from bank_penyalur.lifecycle import TransitionError
from bank_penyalur.runtime import BankRuntime, demo_keys_warning

log = logging.getLogger("bank_penyalur")


def create_app(runtime: BankRuntime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Few DB threads: more only contend for the GIL while waiting on the database.
        anyio.to_thread.current_default_thread_limiter().total_tokens = runtime.settings.worker_threads
        warning = demo_keys_warning(runtime.settings)
        if warning:  # again once serving, so that the service's own log says it too
            log.warning("bank %s %s", runtime.bank.code, warning)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title=f"Bank penyalur {runtime.bank.name} ({runtime.bank.code.upper()})",
        description="KPM accounts, KKS cards, e-money ledger and authorisation for Program Sembako.",
        version="0.1.0",
    )
    app.state.runtime = runtime
    for module in (health, authorisations, kpm, merchants, cards, ops, disbursements, reports, offline, postings):
        app.include_router(module.router, responses=error_responses(503))  # the database is away
    app.include_router(metrics_routes.router)  # GET /metrics, Prometheus text, not in the schema
    _add_error_handlers(app)
    settings = runtime.settings
    app.add_middleware(
        BodySizeLimit,
        default_max_bytes=settings.body_max_bytes,
        limits_bytes={authorisations.router.prefix: settings.auth_body_max_bytes},
    )
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TransitionError)
    async def _transition(_: Request, exc: TransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    add_error_handlers(app, log, "database")
