"""KPM registry and collective account opening (burekol)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from shared.cards import mask_pan
from shared.http import error_responses

from bank_penyalur import registry
from bank_penyalur.api.deps import ReadConn, Runtime, WriteConn
from bank_penyalur.ledger import balance_of
from bank_penyalur.registry import KpmCreate
from bank_penyalur.schemas import WibDateTime
from bank_penyalur.store import latest_card_status
from bank_penyalur.tables import Account, Card, Kpm

router = APIRouter(prefix="/v1/kpm", tags=["kpm"], responses=error_responses(400, 413))

OPENING_BATCH_MAX = 10_000


class OpeningCreate(BaseModel):
    kpm: list[KpmCreate] = Field(min_length=1, max_length=OPENING_BATCH_MAX)
    print_cards: bool = True


class OpeningResultPublic(BaseModel):
    nik: str
    result: str
    reason: str | None
    kpm_id: int | None
    account_no: str | None
    emoney: str | None
    savings: str | None
    pan_masked: str | None = None


class SubAccountPublic(BaseModel):
    kind: str
    account_no: str
    balance_idr: int


class CardBrief(BaseModel):
    pan_masked: str
    status: str
    issued_at: WibDateTime


class KpmPublic(BaseModel):
    id: int
    nik: str
    kk_number: str
    name: str
    province: str
    regency: str
    district: str
    village: str
    pkh: bool
    first_period: str
    registered_at: WibDateTime
    sub_accounts: list[SubAccountPublic]
    cards: list[CardBrief]


@router.post("/openings", status_code=201)
def open_accounts(body: OpeningCreate, runtime: Runtime, conn: WriteConn) -> list[OpeningResultPublic]:
    """Open collective accounts for a batch of KPM; each KPM gets its own result."""
    now = runtime.clock.now()
    results = registry.open_accounts(conn, body.kpm, now)
    opened = [r.kpm_id for r in results if r.kpm_id is not None]
    pans: dict[int, str] = {}
    if body.print_cards:
        printed = registry.print_cards(conn, runtime.bank, runtime.hsm, opened, now, actor="burekol")
        pans = {kpm_id: pan for kpm_id, (_, pan) in zip(opened, printed, strict=True)}
    return [
        OpeningResultPublic(
            **{k: getattr(r, k) for k in ("nik", "result", "reason", "kpm_id", "account_no", "emoney", "savings")},
            pan_masked=mask_pan(pans[r.kpm_id]) if r.kpm_id in pans else None,
        )
        for r in results
    ]


@router.get("/{nik}", responses=error_responses(404))
def get_kpm(nik: str, conn: ReadConn) -> KpmPublic:
    row = conn.execute(select(Kpm.__table__).where(Kpm.nik == nik)).one_or_none()
    if row is None:
        raise HTTPException(404, f"no KPM with NIK {nik}")
    accounts = conn.execute(select(Account.kind, Account.account_no, Account.id).where(Account.kpm_id == row.id)).all()
    cards = conn.execute(select(Card.pan_masked, latest_card_status(), Card.issued_at).where(Card.kpm_id == row.id).order_by(Card.id)).all()
    return KpmPublic(
        **{c: getattr(row, c) for c in KpmPublic.model_fields if c not in ("sub_accounts", "cards")},
        sub_accounts=[SubAccountPublic(kind=k, account_no=no, balance_idr=balance_of(conn, aid)) for k, no, aid in accounts],
        cards=[CardBrief(pan_masked=masked, status=s, issued_at=at) for masked, s, at in cards],
    )
