"""The double-entry ledger: pure constructors for transfers and the invariants they keep.

A transfer moves a positive amount of integer rupiah from one account (debit) to another
(credit). An account's balance is derived: credits minus debits. Because every transfer adds
the same amount to one account and takes it from another, the sum of all balances is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, literal_column, select, union_all

from bank_penyalur.tables import ADVICE, DISBURSEMENT, EMONEY, PROGRAM, Account, AuthRequest, Transfer


@dataclass(frozen=True, slots=True)
class NewTransfer:
    debit_account_id: int
    credit_account_id: int
    amount_idr: int
    kind: str
    period: str | None = None
    reverses_id: int | None = None

    def __post_init__(self) -> None:
        assert isinstance(self.amount_idr, int) and self.amount_idr > 0, self.amount_idr
        assert self.debit_account_id != self.credit_account_id, "a transfer needs two accounts"


def reversal_of(original, original_id: int, kind: str) -> NewTransfer:  # noqa: ANN001 - a transfer row
    """The transfer that gives back exactly what `original` moved."""
    return NewTransfer(
        debit_account_id=original.credit_account_id,
        credit_account_id=original.debit_account_id,
        amount_idr=original.amount_idr,
        kind=kind,
        reverses_id=original_id,
    )


def balance_expr(account_id):  # noqa: ANN001, ANN201 - a column or a bound value
    """SQL expression for the balance (credits minus debits) of a KPM or e-Warong account,
    usable as a subquery.

    Only the program account is ever debited by a disbursement (`check_ledger` verifies it), so
    those debits are left out here: that keeps the lookup on the partial index
    `ix_transfers_debit_spending` whatever the parameter. The program account's own balance
    comes from `check_ledger` and the reports, which sum everything."""
    credits = (
        select(func.coalesce(func.sum(Transfer.amount_idr), 0))
        .where(Transfer.credit_account_id == account_id)
        .scalar_subquery()
    )
    debits = (
        select(func.coalesce(func.sum(Transfer.amount_idr), 0))
        # The kind is written into the SQL, not bound: PostgreSQL matches a partial index only
        # against a predicate it can see when it plans (a prepared statement's generic plan).
        .where(Transfer.debit_account_id == account_id, Transfer.kind != literal_column(f"'{DISBURSEMENT}'"))
        .scalar_subquery()
    )
    return credits - debits


def balance_of(conn: Connection, account_id: int) -> int:
    return int(conn.execute(select(balance_expr(account_id))).scalar_one())


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """Result of reading the whole ledger back: what must always be true, and what is not."""

    balance_sum_idr: int
    transfers: int
    total_moved_idr: int
    kpm_negative: tuple[tuple[int, int], ...]  # (account id, balance) of e-money below zero
    kpm_negative_allowed: tuple[int, ...]  # of those, accounts with an accepted offline exception
    disbursements_not_from_program: int = 0  # must be 0: see balance_expr

    @property
    def ok(self) -> bool:
        unexplained = {acct for acct, _ in self.kpm_negative} - set(self.kpm_negative_allowed)
        return self.balance_sum_idr == 0 and not unexplained and self.disbursements_not_from_program == 0


def check_ledger(conn: Connection) -> LedgerCheck:
    """Derive every balance from the transfers and check the ledger's invariants."""
    legs = union_all(
        select(Transfer.credit_account_id.label("account_id"), Transfer.amount_idr.label("amount")),
        select(Transfer.debit_account_id.label("account_id"), (-Transfer.amount_idr).label("amount")),
    ).subquery()
    per_account = (
        select(legs.c.account_id, func.sum(legs.c.amount).label("balance"))
        .group_by(legs.c.account_id)
        .subquery()
    )
    total = conn.execute(select(func.coalesce(func.sum(per_account.c.balance), 0))).scalar_one()
    negative = conn.execute(
        select(per_account.c.account_id, per_account.c.balance)
        .join(Account, Account.id == per_account.c.account_id)
        .where(Account.kind == EMONEY, per_account.c.balance < 0)
    ).all()
    count, moved = conn.execute(
        select(func.count(), func.coalesce(func.sum(Transfer.amount_idr), 0))
    ).one()
    allowed = _accounts_with_offline_exception(conn, [row[0] for row in negative])
    stray = conn.execute(
        select(func.count())
        .select_from(Transfer)
        .join(Account, Account.id == Transfer.debit_account_id)
        .where(Transfer.kind == DISBURSEMENT, Account.kind != PROGRAM)
    ).scalar_one()
    return LedgerCheck(
        balance_sum_idr=int(total),
        transfers=int(count),
        total_moved_idr=int(moved),
        kpm_negative=tuple((int(a), int(b)) for a, b in negative),
        kpm_negative_allowed=allowed,
        disbursements_not_from_program=int(stray),
    )


def _accounts_with_offline_exception(conn: Connection, account_ids: list[int]) -> tuple[int, ...]:
    if not account_ids:
        return ()
    rows = conn.execute(
        select(Transfer.debit_account_id)
        .join(AuthRequest, AuthRequest.transfer_id == Transfer.id)
        .where(
            Transfer.kind == ADVICE,
            AuthRequest.exception.is_(True),
            Transfer.debit_account_id.in_(account_ids),
        )
        .distinct()
    ).scalars()
    return tuple(sorted(int(r) for r in rows))
