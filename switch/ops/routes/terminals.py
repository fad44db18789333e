"""The terminals (EDCs) the switch knows, and blocking or unblocking one.

A blocked terminal's purchases, inquiries, offline advices and batch uploads are refused by the
switch with RC 58 (not permitted to terminal); its reversals and settlements still pass (see
switch.controls). Blocking and unblocking need the operator role, append a row (the newest row of
a terminal holds) and an audit record, and take effect at once in the switch running this API.

Bank scope: a bank's token sees and acts on the terminals its bank acquires; another bank's
terminal answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel
from sqlalchemy import Connection, select

from switch.controls import set_terminal_block, terminal_block_states
from switch.ops import audit
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Operator, ReadConn, Viewer
from switch.ops.routes.common import ActionReason, WibTime, mask_text
from switch.ops.routes.problems import CONFLICT, GUARDED, NOT_FOUND, WITH_BODY
from switch.ops.scope import terminals_seen
from switch.tables import Terminal

router = APIRouter(prefix="/v1/terminals", tags=["terminals"], responses=GUARDED)

_terminals = Terminal.__table__
Tid = Annotated[str, Path(pattern=r"^[A-Z0-9]{1,8}$", description="Terminal id (field 41), e.g. BNI00001")]


class TerminalPublic(BaseModel):
    tid: str
    mid: str  # the e-Warong (field 42)
    bank_code: str  # the acquiring bank
    name: str
    registered_at: WibTime
    blocked: bool
    block_reason: str | None  # of the last block or unblock
    block_changed_at: WibTime | None


def _public(row, state: dict | None) -> TerminalPublic:  # noqa: ANN001
    return TerminalPublic(
        tid=row.tid,
        mid=row.mid,
        bank_code=row.bank_code,
        name=row.name,
        registered_at=row.registered_at,
        blocked=bool(state and state["blocked"]),
        block_reason=mask_text(state["reason"]) if state else None,
        block_changed_at=state["at"] if state else None,
    )


_COLUMNS = (_terminals.c.tid, _terminals.c.mid, _terminals.c.bank_code, _terminals.c.name, _terminals.c.registered_at)


@router.get("")
def terminals(principal: Viewer, conn: ReadConn) -> list[TerminalPublic]:
    """Every terminal within the token's scope, by id (the network has a few hundred)."""
    rows = conn.execute(select(*_COLUMNS).where(*terminals_seen(principal)).order_by(_terminals.c.tid)).all()
    states = terminal_block_states(conn)
    return [_public(row, states.get(row.tid)) for row in rows]


@router.get("/{tid}", responses=NOT_FOUND)
def terminal(principal: Viewer, tid: Tid, conn: ReadConn) -> TerminalPublic:
    row = _terminal(conn, principal, tid)
    return _public(row, terminal_block_states(conn, [tid]).get(tid))


@router.post("/{tid}/block", responses={**NOT_FOUND, **CONFLICT, **WITH_BODY})
def block(principal: Operator, tid: Tid, body: ActionReason, request: Request, journal: OpsJournal, now: Now) -> TerminalPublic:
    """Refuse the terminal's spending (RC 58) from now on."""
    return _set_block(principal, tid, True, body.reason, request, journal, now())


@router.post("/{tid}/unblock", responses={**NOT_FOUND, **CONFLICT, **WITH_BODY})
def unblock(principal: Operator, tid: Tid, body: ActionReason, request: Request, journal: OpsJournal, now: Now) -> TerminalPublic:
    """Serve the terminal again."""
    return _set_block(principal, tid, False, body.reason, request, journal, now())


def _terminal(conn: Connection, principal: Principal, tid: str, for_update: bool = False):  # noqa: ANN202
    """The terminal if the caller sees it, else 404; `for_update`: locked until the transaction ends."""
    query = select(*_COLUMNS).where(_terminals.c.tid == tid, *terminals_seen(principal))
    row = conn.execute(query.with_for_update() if for_update else query).one_or_none()
    if row is None:
        raise HTTPException(404, f"no terminal {tid}")
    return row


def _set_block(principal: Principal, tid: str, blocked: bool, reason: str, request: Request, journal: OpsJournal, at: datetime) -> TerminalPublic:
    reason = mask_text(reason)
    with journal.db.begin() as conn:
        row = _terminal(conn, principal, tid, for_update=True)  # one change at a time
        state = terminal_block_states(conn, [tid]).get(tid)
        was_blocked = bool(state and state["blocked"])
        if was_blocked == blocked:
            raise HTTPException(409, f"terminal {tid} is {'blocked' if blocked else 'not blocked'} already")
        set_terminal_block(conn, tid, blocked, principal.token_id, reason, at)
        action = "terminal.block" if blocked else "terminal.unblock"
        audit.append(conn, principal.token_id, action, f"terminal/{tid}", row.bank_code,
                     {"blocked": was_blocked}, {"blocked": blocked, "reason": reason}, at)
    _tell_the_core(request, tid, blocked)
    with journal.db.read() as conn:
        return _public(row, terminal_block_states(conn, [tid]).get(tid))


def _tell_the_core(request: Request, tid: str, blocked: bool) -> None:
    """The running switch's set of blocked terminals (`SwitchRuntime` shares it), when there is one."""
    blocked_ids: set[str] | None = getattr(request.app.state, "blocked_terminals", None)
    if blocked_ids is None:
        return
    if blocked:
        blocked_ids.add(tid)
    else:
        blocked_ids.discard(tid)
