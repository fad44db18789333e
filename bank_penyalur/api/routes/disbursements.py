"""Monthly disbursement, also runnable from the CLI (`sembako disburse`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy import select

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.disburse import disburse
from bank_penyalur.tables import DisbursementRun

router = APIRouter(prefix="/v1/disbursements", tags=["disbursements"])


class DisbursementCreate(BaseModel):
    period: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")
    amount_idr: StrictInt = Field(default=150_000, gt=0, le=10_000_000)


@router.post("")
def run_disbursement(body: DisbursementCreate, runtime: Runtime) -> dict:
    """Credit every eligible KPM for the period; running it again credits nobody twice."""
    try:
        return disburse(runtime.db, runtime.clock, body.period, body.amount_idr).as_dict()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("")
def runs(conn: ReadConn, period: str | None = None) -> list[dict]:
    query = select(DisbursementRun.__table__).order_by(DisbursementRun.id)
    if period:
        query = query.where(DisbursementRun.period == period)
    return [
        {c: getattr(r, c) for c in ("id", "period", "amount_idr", "credited", "already_credited", "not_eligible", "failed", "started_at", "finished_at")}
        for r in conn.execute(query)
    ]
