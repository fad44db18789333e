"""The switch's operations HTTP application: one router per resource, errors as clear JSON.

Card numbers never leave it in full: PAN-like values are masked on the way out (see
`routes.common.scrub`), and validation errors do not echo the rejected input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError

from switch.journal import Journal
from switch.ops.routes import health, saf, settlement, stats, transactions

log = logging.getLogger("switch.ops")


def create_ops_app(journal: Journal, stats_provider: Callable[[], dict] | None = None) -> FastAPI:
    app = FastAPI(
        title="Switch Sembako — operations",
        description="Journal, message trails, store-and-forward reversals, bank statistics and "
        "settlement totals of the Program Sembako switch, for bank operations staff.",
        version="0.1.0",
        docs_url="/docs",
    )
    app.state.journal = journal
    app.state.stats_provider = stats_provider
    for module in (health, transactions, saf, stats, settlement):
        app.include_router(module.router)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Without "input": a rejected parameter may be a card number typed in the wrong box.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(DataError)
    async def _unusable(_: Request, exc: DataError) -> JSONResponse:
        log.warning("refused unusable query value: %s", exc.orig)
        return JSONResponse({"detail": "a value in the request cannot be used (control characters?)"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("journal database unavailable: %s", exc.orig)
        return JSONResponse({"detail": "journal database unavailable, try again"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)
