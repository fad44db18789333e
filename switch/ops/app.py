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

from switch.bank_client import BankClient
from switch.journal import Journal
from switch.ops.routes import health, reconciliation, saf, settlement, stats, transactions
from switch.ops.routes import metrics as metrics_routes

log = logging.getLogger("switch.ops")

BODY_MAX_BYTES = DEFAULT_BODY_MAX_BYTES


def create_ops_app(
    journal: Journal,
    stats_provider: Callable[[], dict] | None = None,
    body_max_bytes: int = BODY_MAX_BYTES,
    banks: BankClient | None = None,
) -> FastAPI:
    """The ops API on `journal`; `banks` (the switch's bank client) lets reconciliation ask the
    banks for their postings (without it, every bank is reported as not configured)."""
    app = FastAPI(
        title="Switch Sembako — operations",
        description="Journal, message trails, store-and-forward reversals, bank statistics, "
        "settlement totals and reconciliation of the Program Sembako switch, for bank operations staff.",
        version="0.1.0",
        docs_url="/docs",
    )
    app.state.journal = journal
    app.state.stats_provider = stats_provider
    app.state.banks = banks
    for module in (health, transactions, saf, stats, settlement, reconciliation):
        app.include_router(module.router)
    app.include_router(metrics_routes.router)  # GET /metrics, Prometheus text, not in the schema
    # Without "input" in 422 answers: a rejected parameter may be a card number typed in the
    # wrong box, or a number JSON cannot carry.
    add_error_handlers(app, log, "journal database")
    app.add_middleware(BodySizeLimit, default_max_bytes=body_max_bytes)
    return app
