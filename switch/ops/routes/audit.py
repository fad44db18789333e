"""The audit log of operator and admin actions, for admins, newest first (see switch.ops.audit).

A bank's admin reads the records concerning its bank (its tokens, terminals, cards, the
reversals owed to it); the switch operator's admin reads them all. `sembako ops audit verify`
checks the chain.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from switch.ops import audit
from switch.ops.deps import Admin, ReadConn
from switch.ops.routes.common import ID_MAX, PAGE_MAX, WibTime, scrub
from switch.ops.routes.problems import GUARDED

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=GUARDED)


class AuditPublic(BaseModel):
    seq: int
    at: WibTime
    actor: str  # a token id, or "cli"
    action: str
    target: str
    bank: str | None  # the bank concerned; None: the switch as a whole
    before: Any
    after: Any
    prev_hash: str  # SHA-256 hex in groups of 8 (audit.shown)
    hash: str


class AuditPage(BaseModel):
    items: list[AuditPublic]
    next_before_seq: int | None  # pass as before_seq for the next (older) page; None at the end


@router.get("")
def records(
    principal: Admin,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    before_seq: Annotated[int | None, Query(ge=1, le=ID_MAX, description="Only records older than this one (paging)")] = None,
) -> AuditPage:
    found = audit.entries(conn, principal.bank, limit, before_seq)
    items = [
        AuditPublic(seq=e.seq, at=e.at, actor=e.actor, action=e.action, target=scrub(e.target), bank=e.bank_code,
                    before=scrub(e.before), after=scrub(e.after), prev_hash=audit.shown(e.prev_hash), hash=audit.shown(e.hash))
        for e in found
    ]
    return AuditPage(items=items, next_before_seq=items[-1].seq if len(items) == limit else None)
