"""The switch's operations HTTP application: one router per resource, errors as clear JSON.

Card numbers never leave it in full: PAN-like values are masked on the way out (see
`routes.common.scrub`), and validation errors do not echo the rejected input. Request bodies
are bounded (`BODY_MAX_BYTES`; the API only reads, so no route needs more).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI

from shared.http import DEFAULT_BODY_MAX_BYTES, BodySizeLimit, add_error_handlers

from switch.journal import Journal
from switch.ops.routes import health, saf, settlement, stats, transactions

log = logging.getLogger("switch.ops")

BODY_MAX_BYTES = DEFAULT_BODY_MAX_BYTES


def create_ops_app(
    journal: Journal, stats_provider: Callable[[], dict] | None = None, body_max_bytes: int = BODY_MAX_BYTES
) -> FastAPI:
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
    # Without "input" in 422 answers: a rejected parameter may be a card number typed in the
    # wrong box, or a number JSON cannot carry.
    add_error_handlers(app, log, "journal database")
    app.add_middleware(BodySizeLimit, default_max_bytes=body_max_bytes)
    return app
