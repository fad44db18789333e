"""The switch's operations HTTP application: one router per resource, errors as clear JSON.

Card numbers never leave it in full: PAN-like values are masked on the way out (see
`routes.common.scrub`), and validation errors do not echo the rejected input. Request bodies
are bounded (`BODY_MAX_BYTES`; the few actions take a short JSON body).

Access (switch.ops.deps): every route under /v1 needs a bearer token, with the role and bank
scope its route asks for; `/health`, `/metrics`, the API description and the dashboard page
(`/dashboard`: static files; its figures come from /v1/dashboard with a token) are open. Every /v1
router is included behind `Authenticated`, and `create_ops_app` refuses to build an app with a
/v1 route that would answer without a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from shared.http import DEFAULT_BODY_MAX_BYTES, BodySizeLimit, add_error_handlers

from switch.bank_client import BankClient
from switch.journal import Journal
from switch.ops.deps import Authenticated, authenticate
from switch.ops.routes import audit, cards, health, reconciliation, saf, settlement, stats, terminals, tokens, transactions
from switch.ops.routes import metrics as metrics_routes
from switch.ops.routes import settlement_days
from switch.ops.routes import alerts, bank_reports, dashboard, het_attempts

log = logging.getLogger("switch.ops")

BODY_MAX_BYTES = DEFAULT_BODY_MAX_BYTES


def create_ops_app(
    journal: Journal,
    stats_provider: Callable[[], dict] | None = None,
    body_max_bytes: int = BODY_MAX_BYTES,
    banks: BankClient | None = None,
    now: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The ops API on `journal`; `banks` (the switch's bank client) lets reconciliation ask the
    banks for their postings (without it, every bank is reported as not configured) and lets
    operators retry reversals and ask for PIN resets; `now`: the network's clock (naive WIB)."""
    app = FastAPI(
        title="Switch Sembako — operations",
        description="Journal, message trails, store-and-forward reversals, bank statistics, "
        "settlement totals and reconciliation of the Program Sembako switch, for bank operations staff; "
        "operator actions (SAF retry and cancel, terminal block, PIN reset), tokens and the audit log. "
        "Every /v1 route needs a token (Authorization: Bearer), scoped to one bank or to the switch.",
        version="0.1.0",
        docs_url="/docs",
    )
    app.state.journal = journal
    app.state.stats_provider = stats_provider
    app.state.banks = banks
    app.state.now = now
    app.include_router(health.router)  # open: liveness
    for module in (transactions, saf, stats, settlement, reconciliation, terminals, cards, tokens, audit):
        app.include_router(module.router, dependencies=[Authenticated])
    app.include_router(settlement_days.router, dependencies=[Authenticated])
    app.include_router(alerts.router, dependencies=[Authenticated])
    app.include_router(het_attempts.router, dependencies=[Authenticated])
    app.include_router(bank_reports.router, dependencies=[Authenticated])
    app.include_router(dashboard.router, dependencies=[Authenticated])
    app.include_router(dashboard.page)  # open: GET /dashboard, the page and its files (no data), not in the schema
    app.include_router(metrics_routes.router)  # open: GET /metrics, Prometheus text, not in the schema
    # Without "input" in 422 answers: a rejected parameter may be a card number typed in the
    # wrong box, or a number JSON cannot carry.
    add_error_handlers(app, log, "journal database")
    app.add_middleware(BodySizeLimit, default_max_bytes=body_max_bytes)
    refuse_open_routes(app)
    return app


def refuse_open_routes(app: FastAPI) -> None:
    """RuntimeError naming any /v1 route that would answer without a token: one whose
    dependencies (its router's included) do not reach `authenticate`."""
    open_routes = [
        f"{' '.join(sorted(route.methods or ()))} {route.path}"
        for route in iter_route_contexts(app.routes)
        if (route.path or "").startswith("/v1") and not _needs_token(getattr(route, "dependant", None))
    ]
    if open_routes:
        raise RuntimeError(f"ops API routes without access control: {', '.join(open_routes)} (include them with Authenticated)")


def _needs_token(dependant: Dependant | None) -> bool:
    return dependant is not None and any(d.call is authenticate or _needs_token(d) for d in dependant.dependencies)
