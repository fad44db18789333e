"""The bank's HTTP application: one router per resource, errors as clear JSON.

422 answers never echo the input (`shared.http`); request bodies are bounded, more tightly on
the authorisation endpoints (`auth_body_max_bytes`) than elsewhere (`body_max_bytes`). Callers
present a credential (`bank_penyalur.api.credentials`): the switch's on what the switch calls,
an operator's or the switch's on the operations endpoints; /health and /metrics are open.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.credentials import OPERATOR, SWITCH
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
from bank_penyalur.api.credentials import REFUSED_401, REFUSED_403, CredentialCheck, add_security
from bank_penyalur.api.routes import metrics as metrics_routes
from bank_penyalur.lifecycle import TransitionError
from bank_penyalur.runtime import BankRuntime, demo_keys_warning
from bank_penyalur.settings import WORKERS_MAX, BankSettings

log = logging.getLogger("bank_penyalur")


def app_from_environment() -> FastAPI:
    """The application of one worker process of `sembako bank serve --workers N`: its own
    runtime (database pool, authorisation writer) from the settings in its environment, on the
    database the parent process already migrated. Exactly-once across workers rests on the
    database: unique request keys and the KPM row lock (PostgreSQL)."""
    import atexit

    from shared.logs import configure_logging, worker_slot

    settings = BankSettings()
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    service = f"bank-{settings.bank}"  # the parent process (uvicorn's supervisor) logs there
    configure_logging(f"{service}-worker-{worker_slot(service, settings.data_dir, WORKERS_MAX)}", settings.data_dir)
    runtime = BankRuntime.start(settings)
    atexit.register(runtime.close)
    return create_app(runtime)


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
        description=(
            "KPM accounts, KKS cards, e-money ledger and authorisation for Program Sembako. "
            "Send `Authorization: Bearer <credential>`: the switch's credential on authorisations, "
            "the offline card list and postings; an operator's (or the switch's) everywhere else. "
            "`/health` and `/metrics` are open."
        ),
        version="0.1.0",
    )
    app.state.runtime = runtime
    unavailable = error_responses(503)  # the database is away
    app.include_router(health.router, responses=unavailable)
    for module in SWITCH_ONLY:
        app.include_router(module.router, responses={**unavailable, **REFUSED_401, **REFUSED_403})
    for module in OPERATIONS:
        app.include_router(module.router, responses={**unavailable, **REFUSED_401})
    app.include_router(metrics_routes.router)  # GET /metrics, Prometheus text, not in the schema
    _add_error_handlers(app)
    settings = runtime.settings
    app.add_middleware(
        BodySizeLimit,
        default_max_bytes=settings.body_max_bytes,
        limits_bytes={
            authorisations.router.prefix: settings.auth_body_max_bytes,
            f"{authorisations.router.prefix}/batch": settings.auth_batch_body_max_bytes,
        },
    )
    _add_credential_check(app, runtime)  # outermost: no body is read before the credential
    return app


# Route groups (see bank_penyalur.api.credentials): what the switch calls, and operations.
SWITCH_ONLY = (authorisations, offline, postings)
OPERATIONS = (kpm, merchants, cards, ops, disbursements, reports)


def _add_credential_check(app: FastAPI, runtime: BankRuntime) -> None:
    switch_prefixes = tuple(module.router.prefix for module in SWITCH_ONLY)
    open_paths = frozenset(
        {route.path for route in (*health.router.routes, *metrics_routes.router.routes)}
        | {url for url in (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url) if url}
    )
    settings = runtime.settings
    app.add_middleware(
        CredentialCheck,
        switch_credential=settings.credential(SWITCH),
        operator_credential=settings.credential(OPERATOR),
        switch_prefixes=switch_prefixes,
        open_paths=open_paths,
        realm=f"bank-{runtime.bank.code}",
    )
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = add_security(generate(), switch_prefixes, open_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TransitionError)
    async def _transition(_: Request, exc: TransitionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    add_error_handlers(app, log, "database")
