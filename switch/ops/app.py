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

from shared.http import add_storage_error_handlers

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

    add_storage_error_handlers(app, log, "journal database")
