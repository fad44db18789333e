"""Store-and-forward reversals: what is still owed to the banks, what they acknowledged, what
operations staff cancelled; and the two operator actions on an entry.

- `POST /v1/saf/{id}/retry` delivers a pending reversal now, through the switch's bank client,
  and records the attempt as the SAF loop would (`ack` when the bank answered, else `error`).
  The bank applies a reversal once whoever sends it, so a retry racing the loop is harmless.
- `POST /v1/saf/{id}/cancel` takes a pending reversal out of the queue for good (a row of
  `saf_cancellations`; the SAF loop no longer sends it, switch.controls). For a reversal the bank
  must not get: one already settled by hand with the bank, for instance.

Both need the operator role, append an audit record and answer the entry as it is now; an entry
already acknowledged or cancelled is a 409. Bank scope: a bank's token sees the entries owed to
its bank and those for transactions at its terminals, and acts only on the ones owed to its bank
(403 for the others; 404 for an entry it cannot see).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel
from sqlalchemy import Connection, Row, func, insert, select
from sqlalchemy.exc import IntegrityError

from switch.bank_client import BankReply
from switch.controls import cancel_saf
from switch.journal import SafEntry, saf_acked, saf_attempt_count, saf_cancelled, saf_entry_from_row, saf_last_error
from switch.ops import audit
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Operator, ReadConn, Viewer, forbidden
from switch.ops.routes.common import ID_MAX, PAGE_MAX, ActionReason, WibTime, mask_text, scrub
from switch.ops.routes.problems import CONFLICT, GUARDED, NOT_FOUND, WITH_BODY
from switch.ops.routes.reconciliation import OpsBanks
from switch.ops.scope import saf_entries_of
from switch.tables import ACK, ERROR, SafAttempt, SafCancellation, SafEntryRow

router = APIRouter(prefix="/v1/saf", tags=["store and forward"], responses=GUARDED)

_entries = SafEntryRow.__table__
_attempts = SafAttempt.__table__
_cancels = SafCancellation.__table__

SafId = Annotated[int, Path(ge=1, le=ID_MAX, description="The SAF entry's id")]
ACTION_ANSWERS = {**NOT_FOUND, **CONFLICT, **WITH_BODY}


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
    cancelled_at: WibTime | None = None
    cancel_reason: str | None = None
    attempts: list[AttemptPublic]


class SafOverview(BaseModel):
    pending_total: int
    pending: list[SafEntryPublic]  # oldest first
    acknowledged: list[SafEntryPublic]  # most recently acknowledged first
    cancelled: list[SafEntryPublic]  # most recently cancelled first


@router.get("")
def overview(
    principal: Viewer,
    conn: ReadConn,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Pending entries shown at most")] = 100,
    acknowledged: Annotated[int, Query(ge=0, le=PAGE_MAX, description="Last N acknowledged entries")] = 20,
    cancelled: Annotated[int, Query(ge=0, le=PAGE_MAX, description="Last N cancelled entries")] = 20,
) -> SafOverview:
    scope = saf_entries_of(principal)
    still_owed = [~saf_acked(), ~saf_cancelled(), *scope]
    pending_total = conn.execute(select(func.count()).select_from(_entries).where(*still_owed)).scalar_one()
    pending = conn.execute(select(_entries).where(*still_owed).order_by(_entries.c.id).limit(limit)).all()
    acked_ids = [row.saf_id for row in conn.execute(_last_acknowledged(acknowledged, scope))]
    cancelled_ids = [row.saf_id for row in conn.execute(_last_cancelled(cancelled, scope))]
    shown = [row.id for row in pending] + acked_ids + cancelled_ids
    rows = {row.id: row for row in conn.execute(select(_entries).where(_entries.c.id.in_(acked_ids + cancelled_ids)))}
    attempts, cancels = _attempts_of(conn, shown), _cancels_of(conn, shown)
    return SafOverview(
        pending_total=pending_total,
        pending=[_public(row, attempts[row.id], None) for row in pending],
        acknowledged=[_public(rows[i], attempts[i], cancels.get(i)) for i in acked_ids],
        cancelled=[_public(rows[i], attempts[i], cancels.get(i)) for i in cancelled_ids],
    )


@router.post("/{saf_id}/retry", responses=ACTION_ANSWERS)
async def retry(principal: Operator, saf_id: SafId, journal: OpsJournal, banks: OpsBanks, now: Now) -> SafEntryPublic:
    """Deliver a pending reversal to its bank now (503 when this API has no link to that bank)."""
    entry = await asyncio.to_thread(_deliverable, journal, principal, saf_id)
    if banks is None or not banks.knows(entry.bank_code):
        raise HTTPException(503, f"this ops API has no link to bank {entry.bank_code}")
    outcome = await banks.send(entry.bank_code, "reversal", entry.body)
    if isinstance(outcome, BankReply):
        result, detail = ACK, f"rc {outcome.rc}"
    else:
        result, detail = ERROR, outcome.reason
    await asyncio.to_thread(_record_retry, journal, principal, entry, result, detail, now())
    return await asyncio.to_thread(_public_by_id, journal, saf_id)


@router.post("/{saf_id}/cancel", responses=ACTION_ANSWERS)
def cancel(principal: Operator, saf_id: SafId, body: ActionReason, journal: OpsJournal, now: Now) -> SafEntryPublic:
    """Never send this reversal again (it stays in the journal, marked cancelled)."""
    reason, at = mask_text(body.reason), now()
    try:
        with journal.db.begin() as conn:
            row = _actionable(conn, principal, saf_id)
            cancel_saf(conn, saf_id, principal.token_id, reason, at)
            audit.append(conn, principal.token_id, "saf.cancel", f"saf/{saf_id}", row.bank_code,
                         {"state": "pending", "rrn": row.rrn}, {"state": "cancelled", "rrn": row.rrn, "reason": reason}, at)
    except IntegrityError:  # cancelled by someone else meanwhile
        raise HTTPException(409, f"SAF entry {saf_id} is cancelled already") from None
    return _public_by_id(journal, saf_id)


# -- reading entries --------------------------------------------------------------------------------


def _last_acknowledged(count: int, scope: list):  # noqa: ANN202
    ack_id = func.min(_attempts.c.id).label("ack_id")
    return (
        select(_attempts.c.saf_id, ack_id)
        .join(_entries, _entries.c.id == _attempts.c.saf_id)
        .where(_attempts.c.outcome == ACK, *scope)
        .group_by(_attempts.c.saf_id)
        .order_by(ack_id.desc())
        .limit(count)
    )


def _last_cancelled(count: int, scope: list):  # noqa: ANN202
    return (
        select(_cancels.c.saf_id)
        .join(_entries, _entries.c.id == _cancels.c.saf_id)
        .where(*scope)
        .order_by(_cancels.c.at.desc(), _cancels.c.saf_id.desc())
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


def _cancels_of(conn: Connection, saf_ids: Sequence[int]) -> dict[int, Row]:
    if not saf_ids:
        return {}
    return {row.saf_id: row for row in conn.execute(select(_cancels).where(_cancels.c.saf_id.in_(saf_ids)))}


def _public(row: Row, attempts: list[AttemptPublic], cancelled: Row | None) -> SafEntryPublic:
    acked_at = next((a.at for a in attempts if a.outcome == ACK), None)
    return SafEntryPublic(
        id=row.id,
        rrn=row.rrn,
        bank_code=row.bank_code,
        body=scrub(row.body),
        created_at=row.created_at,
        acknowledged_at=acked_at,
        cancelled_at=cancelled.at if cancelled is not None else None,
        cancel_reason=mask_text(cancelled.reason) if cancelled is not None else None,
        attempts=attempts,
    )


def _public_by_id(journal: OpsJournal, saf_id: int) -> SafEntryPublic:
    with journal.db.read() as conn:
        row = conn.execute(select(_entries).where(_entries.c.id == saf_id)).one()
        return _public(row, _attempts_of(conn, [saf_id])[saf_id], _cancels_of(conn, [saf_id]).get(saf_id))


# -- acting on one entry ----------------------------------------------------------------------------

_ENTRY = select(
    _entries.c.id, _entries.c.rrn, _entries.c.bank_code, _entries.c.body, _entries.c.pan_sealed, _entries.c.created_at,
    saf_attempt_count().label("attempts"), saf_last_error().label("last_error"),
    saf_acked().label("acked"), saf_cancelled().label("cancelled"),
)


def _actionable(conn: Connection, principal: Principal, saf_id: int) -> Row:
    """The entry, when the caller may act on it and it is still owed; else 404, 403 or 409."""
    row = conn.execute(_ENTRY.where(_entries.c.id == saf_id, *saf_entries_of(principal))).one_or_none()
    if row is None:
        raise HTTPException(404, f"no SAF entry {saf_id}")
    if not principal.sees_bank(row.bank_code):
        raise forbidden(f"token {principal.token_id} is scoped to {principal.scope}: SAF entry {saf_id} is owed to {row.bank_code}")
    if row.acked:
        raise HTTPException(409, f"SAF entry {saf_id} was acknowledged by {row.bank_code} already")
    if row.cancelled:
        raise HTTPException(409, f"SAF entry {saf_id} is cancelled")
    return row


def _deliverable(journal: OpsJournal, principal: Principal, saf_id: int) -> SafEntry:
    with journal.db.read() as conn:
        entry = saf_entry_from_row(_actionable(conn, principal, saf_id), journal.pan_cipher)
    if not entry.card_readable:
        raise HTTPException(409, f"SAF entry {saf_id} cannot be sent: its card number does not open under the PAN key")
    return entry


def _record_retry(journal: OpsJournal, principal: Principal, entry: SafEntry, result: str, detail: str, at) -> None:  # noqa: ANN001
    before = {"state": "pending", "rrn": entry.rrn, "attempts": entry.attempts, "last_error": _masked(entry.last_error)}
    after = {"state": "acknowledged" if result == ACK else "pending", "rrn": entry.rrn, "outcome": result, "detail": mask_text(detail)}
    with journal.db.begin() as conn:
        conn.execute(insert(_attempts), {"saf_id": entry.id, "outcome": result, "detail": detail, "at": at})
        audit.append(conn, principal.token_id, "saf.retry", f"saf/{entry.id}", entry.bank_code, before, after, at)


def _masked(text: str | None) -> str | None:
    return mask_text(text) if text is not None else None
