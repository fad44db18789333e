"""Sales above HET reported by the e-Warong's POS: `POST /v1/het-attempts`.

The POS refuses goods priced above their HET (Harga Eceran Tertinggi) and tells the switch,
best effort, with a token of the e-Warong's bank (any role: reporting is not an operator action
and changes nothing in the network). The terminal must be one the switch knows, with that
e-Warong, of the token's bank. Each report is one row of `het_attempts`, read by the `above_het`
alert (`GET /v1/alerts`). Nothing in a report is a card number: the POS sends goods and prices.
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from sqlalchemy import insert, select

from shared.money import AMOUNT_IDR_MAX
from switch.ops.deps import Now, OpsJournal, Viewer, own_bank
from switch.ops.routes.common import WibTime
from switch.ops.routes.params import Moment
from switch.ops.routes.problems import GUARDED, WITH_BODY, refuse
from switch.tables import HetAttempt, Terminal

router = APIRouter(prefix="/v1/het-attempts", tags=["alerts"], responses=GUARDED)

QTY_MAX = 1_000  # units of one good in one cart, as the POS allows
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


@router.post("", status_code=201, responses=WITH_BODY)
def report_attempt(principal: Viewer, body: HetAttemptCreate, journal: OpsJournal, now: Now) -> HetAttemptPublic:
    """Record a sale above HET the POS refused (for the `above_het` alert)."""
    received_at = now()
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
