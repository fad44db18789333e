"""Bank scope: what a bank's token sees of the journal.

A transaction concerns a bank when the bank issued the card (`transactions.bank_code`, the
issuer the switch routed to) or acquires the terminal (`terminals.bank_code` of its `tid`: the
bank's e-Warong and EDCs). A switch-wide token sees everything.

- Lists and totals (transactions, SAF, statistics, settlement, terminals) hold only what concerns
  the token's bank.
- Naming another bank in a parameter (`bank=bri`, a reconciliation `tid` of another bank's
  terminal, a PIN reset of another bank's card) is refused with 403.
- A single object addressed by its path (a transaction by RRN, a SAF entry, a terminal) that does
  not concern the bank answers 404, as if it did not exist: a token learns nothing of other
  banks' traffic.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, or_, select

from switch.ops.access import Principal
from switch.tables import SafEntryRow, Terminal, Transaction

_terminals = Terminal.__table__
_transactions = Transaction.__table__
_saf = SafEntryRow.__table__


def terminals_of(bank: str) -> Select:
    """The ids of the terminals the bank acquires."""
    return select(_terminals.c.tid).where(_terminals.c.bank_code == bank)


def transactions_of(principal: Principal, rows: Any = _transactions.c) -> list[ColumnElement]:  # noqa: ANN401
    """Conditions for the transactions the caller may see; `rows`: the columns of `transactions`,
    or of an alias of it (anything with `bank_code` and `tid`)."""
    if principal.bank is None:
        return []
    return [or_(rows.bank_code == principal.bank, rows.tid.in_(terminals_of(principal.bank)))]


def saf_entries_of(principal: Principal) -> list[ColumnElement]:
    """SAF entries the caller may see: owed to its bank, or for a transaction at its terminals."""
    if principal.bank is None:
        return []
    at_its_terminals = select(_transactions.c.rrn).where(_transactions.c.tid.in_(terminals_of(principal.bank)))
    return [or_(_saf.c.bank_code == principal.bank, _saf.c.rrn.in_(at_its_terminals))]


def terminals_seen(principal: Principal) -> list[ColumnElement]:
    return [] if principal.bank is None else [_terminals.c.bank_code == principal.bank]


def acquirer_of(conn: Connection, tid: str) -> str | None:
    """The bank acquiring the terminal, None when the switch does not know it."""
    return conn.execute(select(_terminals.c.bank_code).where(_terminals.c.tid == tid)).scalar_one_or_none()


def its_terminal_ids(conn: Connection, principal: Principal) -> set[str] | None:
    """The terminals the caller's bank acquires; None for a switch-wide token (all of them)."""
    if principal.bank is None:
        return None
    return set(conn.execute(terminals_of(principal.bank)).scalars())
