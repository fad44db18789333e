"""e-Warong (agent shop) registration."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from shared.http import error_responses

from bank_penyalur import registry
from bank_penyalur.api.deps import ReadConn, Runtime, WriteConn
from bank_penyalur.ledger import balance_of
from bank_penyalur.registry import MerchantCreate
from bank_penyalur.schemas import WibDateTime
from bank_penyalur.tables import Account, Merchant

router = APIRouter(prefix="/v1/merchants", tags=["merchants"], responses=error_responses(400, 413))


class MerchantsCreate(BaseModel):
    merchants: list[MerchantCreate] = Field(min_length=1, max_length=1_000)


class MerchantPublic(BaseModel):
    id: str
    name: str
    province: str
    regency: str
    district: str
    village: str
    registered_at: WibDateTime
    balance_idr: int


@router.post("", status_code=201)
def register(body: MerchantsCreate, runtime: Runtime, conn: WriteConn) -> dict:
    created = registry.register_merchants(conn, body.merchants, runtime.clock.now())
    known = [m.id for m in body.merchants if m.id not in created]
    return {"registered": created, "already_registered": known}


@router.get("/{merchant_id}", responses=error_responses(404))
def get_merchant(merchant_id: str, conn: ReadConn) -> MerchantPublic:
    row = conn.execute(select(Merchant.__table__).where(Merchant.id == merchant_id)).one_or_none()
    if row is None:
        raise HTTPException(404, f"no e-Warong {merchant_id} registered at this bank")
    account_id = conn.execute(select(Account.id).where(Account.merchant_id == merchant_id)).scalar_one()
    fields = {c: getattr(row, c) for c in MerchantPublic.model_fields if c != "balance_idr"}
    return MerchantPublic(**fields, balance_idr=balance_of(conn, account_id))
