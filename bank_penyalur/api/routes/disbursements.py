"""Monthly disbursement, also runnable from the CLI (`sembako disburse`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy import select

from shared.http import error_responses, unprocessable

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.disburse import disburse
from bank_penyalur.schemas import WibDateTime
from bank_penyalur.tables import DisbursementRun

router = APIRouter(prefix="/v1/disbursements", tags=["disbursements"], responses=error_responses(400, 413))

PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


class DisbursementCreate(BaseModel):
    period: str = Field(pattern=PERIOD_PATTERN)
    amount_idr: StrictInt = Field(default=150_000, gt=0, le=10_000_000)


class DisbursementRunPublic(BaseModel):
    id: int
    period: str
    amount_idr: int
    credited: int
    already_credited: int
    not_eligible: int
    failed: int
    started_at: WibDateTime
    finished_at: WibDateTime


@router.post("")
def run_disbursement(body: DisbursementCreate, runtime: Runtime) -> dict:
    """Credit every eligible KPM for the period; running it again credits nobody twice."""
    try:
        return disburse(runtime.db, runtime.clock, body.period, body.amount_idr).as_dict()
    except ValueError as exc:
        raise unprocessable(str(exc)) from None


@router.get("")
def runs(conn: ReadConn, period: str | None = None) -> list[DisbursementRunPublic]:
    query = select(DisbursementRun.__table__).order_by(DisbursementRun.id)
    if period:
        query = query.where(DisbursementRun.period == period)
    return [DisbursementRunPublic.model_validate(r, from_attributes=True) for r in conn.execute(query)]
