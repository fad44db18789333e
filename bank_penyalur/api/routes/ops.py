"""Operations staff: PIN unblock/reset with an audit record, the audit trail, ledger check."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import insert, select

from shared.http import error_responses, unprocessable

from bank_penyalur import store
from bank_penyalur.api.deps import ReadConn, Runtime, WriteConn
from bank_penyalur.api.routes.cards import PIN_BLOCK_REFUSED, CardPublic, card_public, load_card
from bank_penyalur.ledger import check_ledger
from bank_penyalur.schemas import ActorName, PinBlockHex, WibDateTime, plain_text
from bank_penyalur.tables import PIN_RESET, PIN_SET, OpsAudit

router = APIRouter(prefix="/v1/ops", tags=["operations"])

PinResetReason = plain_text(3, 200)

AUDIT_PAGE_MAX = 500


class PinReset(BaseModel):
    actor: ActorName
    reason: PinResetReason
    new_pin_block: PinBlockHex | None = Field(
        default=None, description="Optional new PIN (format 0 block under the ZPK); else tries are reset only"
    )


class AuditPublic(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    reason: str
    at: WibDateTime


@router.post("/cards/{pan}/pin-reset", responses=error_responses(400, 404, 413))
def pin_reset(pan: str, body: PinReset, runtime: Runtime, conn: WriteConn) -> CardPublic:
    """Unblock a PIN blocked after wrong tries (and optionally set a new PIN); audited."""
    card = load_card(conn, runtime, pan)
    now = runtime.clock.now()
    action = "pin_unblock"
    if body.new_pin_block is not None:
        pvv = runtime.hsm.pvv_from_block(pan, body.new_pin_block)
        if pvv is None:
            raise unprocessable(PIN_BLOCK_REFUSED, ("body", "new_pin_block"))
        store.append_pin_event(conn, card.card_id, PIN_SET, now, body.actor, pvv=pvv)
        action = "pin_reset"
    else:
        store.append_pin_event(conn, card.card_id, PIN_RESET, now, body.actor)
    conn.execute(insert(OpsAudit).values(actor=body.actor, action=action, target=card.pan_masked, reason=body.reason, at=now))
    return card_public(conn, runtime, pan)


@router.get("/audit")
def audit(conn: ReadConn, limit: int = 100) -> list[AuditPublic]:
    limit = max(1, min(limit, AUDIT_PAGE_MAX))
    rows = conn.execute(select(OpsAudit.__table__).order_by(OpsAudit.id.desc()).limit(limit))
    return [AuditPublic.model_validate(r, from_attributes=True) for r in rows]


@router.get("/ledger-check")
def ledger_check(conn: ReadConn) -> dict:
    """Read the whole ledger back and check that it balances."""
    result = check_ledger(conn)
    return {
        "ok": result.ok,
        "balance_sum_idr": result.balance_sum_idr,
        "transfers": result.transfers,
        "total_moved_idr": result.total_moved_idr,
        "kpm_negative": [{"account_id": a, "balance_idr": b} for a, b in result.kpm_negative],
        "kpm_negative_offline_exceptions": list(result.kpm_negative_allowed),
    }
