"""Store-and-forward reversals: what is still owed to the banks, and what they acknowledged."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Connection, Row, func, select

from switch.journal import saf_acked
from switch.ops.deps import ReadConn
from switch.ops.routes.common import PAGE_MAX, WibTime, mask_text, scrub
from switch.ops.routes.problems import UNAVAILABLE
from switch.tables import ACK, SafAttempt, SafEntryRow

router = APIRouter(prefix="/v1/saf", tags=["store and forward"], responses=UNAVAILABLE)

_entries = SafEntryRow.__table__
_attempts = SafAttempt.__table__


class AttemptPublic(BaseModel):
    outcome: str
    detail: str | None
    at: WibTime


class SafEntryPublic(BaseModel):
    id: int
    rrn: str
    bank_code: str
    body: dict  # the reversal request for the bank, card number masked
    created_at: WibTime
    acknowledged_at: WibTime | None
    attempts: list[AttemptPublic]


class SafOverview(BaseModel):
    pending_total: int
    pending: list[SafEntryPublic]  # oldest first
    acknowledged: list[SafEntryPublic]  # most recently acknowledged first


@router.get("")
def overview(
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Pending entries shown at most")] = 100,
    acknowledged: Annotated[int, Query(ge=0, le=PAGE_MAX, description="Last N acknowledged entries")] = 20,
) -> SafOverview:
    pending_total = conn.execute(select(func.count()).select_from(_entries).where(~saf_acked())).scalar_one()
    pending = conn.execute(select(_entries).where(~saf_acked()).order_by(_entries.c.id).limit(limit)).all()
    acked_ids = [row.saf_id for row in conn.execute(_last_acknowledged(acknowledged))]
    acked_rows = {row.id: row for row in conn.execute(select(_entries).where(_entries.c.id.in_(acked_ids)))}
    attempts = _attempts_of(conn, [row.id for row in pending] + acked_ids)
    return SafOverview(
        pending_total=pending_total,
        pending=[_public(row, attempts[row.id]) for row in pending],
        acknowledged=[_public(acked_rows[i], attempts[i]) for i in acked_ids],
    )


def _last_acknowledged(count: int):  # noqa: ANN202
    ack_id = func.min(_attempts.c.id).label("ack_id")
    return (
        select(_attempts.c.saf_id, ack_id)
        .where(_attempts.c.outcome == ACK)
        .group_by(_attempts.c.saf_id)
        .order_by(ack_id.desc())
        .limit(count)
    )


def _attempts_of(conn: Connection, saf_ids: Sequence[int]) -> defaultdict[int, list[AttemptPublic]]:
    found: defaultdict[int, list[AttemptPublic]] = defaultdict(list)
    if not saf_ids:
        return found
    query = select(_attempts).where(_attempts.c.saf_id.in_(saf_ids)).order_by(_attempts.c.id)
    for row in conn.execute(query):
        detail = mask_text(row.detail) if row.detail is not None else None
        found[row.saf_id].append(AttemptPublic(outcome=row.outcome, detail=detail, at=row.at))
    return found


def _public(row: Row, attempts: list[AttemptPublic]) -> SafEntryPublic:
    acked_at = next((a.at for a in attempts if a.outcome == ACK), None)
    return SafEntryPublic(
        id=row.id,
        rrn=row.rrn,
        bank_code=row.bank_code,
        body=scrub(row.body),
        created_at=row.created_at,
        acknowledged_at=acked_at,
        attempts=attempts,
    )
