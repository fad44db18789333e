"""Sales above HET reported by the e-Warong's POS: `POST /v1/het-attempts`.

The POS refuses goods priced above their HET (Harga Eceran Tertinggi) and tells the switch,
best effort, with a token of the e-Warong's bank (any role: reporting is not an operator action
and changes nothing in the network). The terminal must be one the switch knows, with that
e-Warong, of the token's bank. Each report is one row of `het_attempts`, read by the `above_het`
alert (`GET /v1/alerts`). Nothing in a report is a card number: the POS sends goods and prices.

A token may report at most `HET_REPORTS_PER_MINUTE_MAX` goods within any minute (by the network's
clock); more get 429 with `Retry-After`, and nothing is stored. A cashier refuses a handful of
goods a minute at most: the bound keeps a runaway or hostile client from filling the table.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from sqlalchemy import insert, select

from shared.money import AMOUNT_IDR_MAX
from shared.http import error_responses
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Viewer, own_bank
from switch.ops.routes.common import WibTime
from switch.ops.routes.params import Moment
from switch.ops.routes.problems import GUARDED, WITH_BODY, refuse
from switch.tables import HetAttempt, Terminal

router = APIRouter(prefix="/v1/het-attempts", tags=["alerts"], responses=GUARDED)

QTY_MAX = 1_000  # units of one good in one cart, as the POS allows
HET_REPORTS_PER_MINUTE_MAX = 60  # per token
WINDOW = timedelta(minutes=1)
PRINTABLE = r"^[ -~]+$"
_INSERT = insert(HetAttempt.__table__).returning(HetAttempt.__table__.c.id)


class HetAttemptCreate(BaseModel):
    """A good the POS refused to sell because its price is above its HET."""

    model_config = ConfigDict(extra="forbid")

    terminal_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{8}$", description="The e-Warong's EDC (field 41)")]
    merchant_id: Annotated[str, Field(pattern=r"^[A-Z0-9]{6,15}$", description="The e-Warong (field 42)")]
    sku: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{0,15}$")]
    product_name: Annotated[str, Field(min_length=1, max_length=60, pattern=PRINTABLE)]
    unit: Annotated[str, Field(min_length=1, max_length=10, pattern=PRINTABLE)]
    price_idr: Annotated[StrictInt, Field(ge=1, le=AMOUNT_IDR_MAX, description="The shop's price per unit")]
    het_idr: Annotated[StrictInt, Field(ge=0, le=AMOUNT_IDR_MAX, description="The HET per unit")]
    qty: Annotated[StrictInt, Field(ge=1, le=QTY_MAX)]
    attempted_at: Annotated[Moment, Field(description="When the cashier tried, by the POS's clock (without offset = WIB)")]

    @model_validator(mode="after")
    def _above_het(self) -> Self:
        if self.price_idr <= self.het_idr:
            raise ValueError("price_idr must be above het_idr: only a sale above HET is reported")
        return self


class HetAttemptPublic(BaseModel):
    id: int
    terminal_id: str
    merchant_id: str
    sku: str
    price_idr: int
    het_idr: int
    qty: int
    attempted_at: WibTime
    received_at: WibTime


class ReportBudget:
    """At most `per_minute_max` reports per token within any minute: the times of each token's
    latest reports, at most that many kept (so memory is bounded by the tokens there are)."""

    def __init__(self, per_minute_max: int = HET_REPORTS_PER_MINUTE_MAX) -> None:
        assert per_minute_max >= 1
        self.per_minute_max = per_minute_max
        self._recent: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()  # sync routes run on a thread pool

    def take(self, token_id: str, at: datetime) -> float | None:
        """Count one report of `token_id` at `at`; or, over budget, the seconds until one is free."""
        with self._lock:
            recent = self._recent.setdefault(token_id, deque(maxlen=self.per_minute_max))
            while recent and recent[0] <= at - WINDOW:
                recent.popleft()
            if len(recent) < self.per_minute_max:
                recent.append(at)
                return None
            return (recent[0] + WINDOW - at).total_seconds()


def budget_of(request: Request) -> ReportBudget:
    state = request.app.state
    if getattr(state, "het_budget", None) is None:
        state.het_budget = ReportBudget()
    return state.het_budget


def _within_budget(request: Request, principal: Principal, at: datetime) -> None:
    wait_s = budget_of(request).take(principal.token_id, at)
    if wait_s is not None:
        retry_after_s = str(max(1, math.ceil(wait_s)))
        raise HTTPException(429, f"more than {budget_of(request).per_minute_max} reports within a minute from this token: "
                                 f"try again in {retry_after_s} s", headers={"Retry-After": retry_after_s})


@router.post("", status_code=201, responses={**WITH_BODY, **error_responses(429)})
def report_attempt(principal: Viewer, body: HetAttemptCreate, journal: OpsJournal, now: Now, request: Request) -> HetAttemptPublic:
    """Record a sale above HET the POS refused (for the `above_het` alert)."""
    received_at = now()
    _within_budget(request, principal, received_at)
    with journal.db.begin() as conn:
        terminal = conn.execute(select(Terminal.mid, Terminal.bank_code).where(Terminal.tid == body.terminal_id)).one_or_none()
        if terminal is None:
            refuse("body", "terminal_id", "is not a terminal of the network")
        own_bank(principal, terminal.bank_code, "terminal of bank")
        if terminal.mid != body.merchant_id:
            refuse("body", "merchant_id", "is not the e-Warong of that terminal")
        row = {
            "tid": body.terminal_id, "mid": body.merchant_id, "sku": body.sku, "product_name": body.product_name,
            "unit": body.unit, "price_idr": body.price_idr, "het_idr": body.het_idr, "qty": body.qty,
            "attempted_at": body.attempted_at, "received_at": received_at,
        }  # fmt: skip
        attempt_id = conn.execute(_INSERT, row).scalar_one()
    return HetAttemptPublic(
        id=attempt_id, terminal_id=body.terminal_id, merchant_id=body.merchant_id, sku=body.sku, price_idr=body.price_idr,
        het_idr=body.het_idr, qty=body.qty, attempted_at=body.attempted_at, received_at=received_at,
    )  # fmt: skip
