"""What operations staff control in the running switch, kept in the journal's database.

- **Blocked terminals**: `terminal_blocks` rows, the newest row of a terminal holds. The core
  refuses a blocked terminal's purchases, inquiries, advices and batch uploads with RC 58 (not
  permitted to terminal); its reversals and settlements still pass, so money owed back to a card
  still goes back and its batch can close. The core keeps the blocked ids in a set, filled from
  here at start and updated by the ops API.
- **Cancelled reversals**: a `saf_cancellations` row takes a store-and-forward reversal out of
  the queue for good (the bank will not be asked again); `Journal.pending_saf` leaves them out.

Both are appended, never updated: the history of who blocked, unblocked or cancelled stays.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from shared.db import Database
from switch.tables import SafCancellation, TerminalBlock

_blocks = TerminalBlock.__table__
_cancels = SafCancellation.__table__

_LATEST_BLOCKS = select(_blocks.c.tid, _blocks.c.blocked, _blocks.c.reason, _blocks.c.actor, _blocks.c.at).where(
    _blocks.c.id.in_(select(func.max(_blocks.c.id)).group_by(_blocks.c.tid))
)


def cancel_saf(conn: Connection, saf_id: int, actor: str, reason: str, at: datetime) -> None:
    conn.execute(insert(_cancels), {"saf_id": saf_id, "actor": actor, "reason": reason, "at": at})


def terminal_block_states(conn: Connection, tids: Iterable[str] | None = None) -> dict[str, dict]:
    """tid -> its newest block row (blocked, reason, actor, at), for the terminals that have one."""
    query = _LATEST_BLOCKS if tids is None else _LATEST_BLOCKS.where(_blocks.c.tid.in_(list(tids)))
    return {row.tid: dict(row._mapping) for row in conn.execute(query)}


def blocked_terminals(db: Database) -> set[str]:
    """The ids of the terminals blocked now."""
    with db.read() as conn:
        return {tid for tid, state in terminal_block_states(conn).items() if state["blocked"]}


def set_terminal_block(conn: Connection, tid: str, blocked: bool, actor: str, reason: str, at: datetime) -> None:
    conn.execute(insert(_blocks), {"tid": tid, "blocked": blocked, "reason": reason, "actor": actor, "at": at})
