"""Monthly disbursement: move the benefit from the program (KPA) account to every KPM e-money
sub-account, once per KPM per period.

The work is bulk SQL over ranges of account ids (`INSERT ... SELECT`), one transaction per
chunk, so a run can be interrupted and run again: a partial unique index on
(credit account, period) for disbursement transfers guarantees that no KPM is credited twice,
and a re-run only credits who is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, and_, exists, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared.clock import Clock, period_bounds
from shared.db import Database
from bank_penyalur.registry import ensure_program_account
from bank_penyalur.tables import (
    DISBURSEMENT,
    EMONEY,
    Account,
    DisbursementRun,
    Kpm,
    SubAccountResult,
    Transfer,
)

CHUNK_ACCOUNTS = 100_000
FAILED_SAMPLE_MAX = 20


@dataclass(frozen=True, slots=True)
class DisbursementReport:
    period: str
    amount_idr: int
    credited: int
    already_credited: int
    not_eligible: int  # first benefit period is later than this one
    failed: int  # KPM without an e-money sub-account
    failed_sample: list[dict]
    total_idr: int

    def as_dict(self) -> dict:
        return asdict(self)


def disburse(
    db: Database,
    clock: Clock,
    period: str,
    amount_idr: int,
    progress: Callable[[int, int], None] | None = None,
) -> DisbursementReport:
    """Credit `amount_idr` for `period` to every eligible KPM not yet credited for it."""
    period_bounds(period)  # validates YYYY-MM
    if not isinstance(amount_idr, int) or amount_idr <= 0:
        raise ValueError(f"amount must be a positive integer of rupiah, got {amount_idr!r}")
    started = clock.now()
    with db.begin() as conn:
        program_id = ensure_program_account(conn, started)
        low, high = _emoney_id_range(conn)
        _refresh_statistics(conn)
    credited = 0
    for chunk_low in range(low, high + 1, CHUNK_ACCOUNTS):
        chunk_high = min(chunk_low + CHUNK_ACCOUNTS - 1, high)
        with db.begin() as conn:
            credited += _credit_chunk(conn, program_id, period, amount_idr, chunk_low, chunk_high, clock)
        if progress:
            progress(chunk_high - low + 1, high - low + 1)
    with db.begin() as conn:
        report = _report(conn, period, amount_idr, credited, started, clock)
    return report


def _emoney_id_range(conn: Connection) -> tuple[int, int]:
    low, high = conn.execute(
        select(func.min(Account.id), func.max(Account.id)).where(Account.kind == EMONEY)
    ).one()
    return (low, high) if low is not None else (1, 0)


def _credit_chunk(
    conn: Connection, program_id: int, period: str, amount_idr: int, low: int, high: int, clock: Clock
) -> int:
    """Credit the eligible accounts with ids in [low, high]; the unique index on (credit
    account, period) skips whoever was already credited, also by a concurrent run."""
    source = (
        select(
            literal(program_id),
            Account.id,
            literal(amount_idr),
            literal(DISBURSEMENT),
            literal(period),
            literal(clock.now()),
        )
        .join(Kpm, Kpm.id == Account.kpm_id)
        .where(Account.kind == EMONEY, Account.id.between(low, high), Kpm.first_period <= period)
    )
    columns = ["debit_account_id", "credit_account_id", "amount_idr", "kind", "period", "created_at"]
    statement = _dialect_insert(conn)(Transfer).from_select(columns, source).on_conflict_do_nothing()
    return conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount


def _dialect_insert(conn: Connection):  # noqa: ANN202
    """INSERT with ON CONFLICT DO NOTHING (both SQLite and PostgreSQL have it)."""
    return postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _refresh_statistics(conn: Connection) -> None:
    """After a bulk load PostgreSQL may not have analysed the tables yet; a plan made without
    statistics can turn the chunk join into a nested loop over everything."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE accounts"))
        conn.execute(text("ANALYZE kpm"))


def _report(
    conn: Connection, period: str, amount_idr: int, credited: int, started, clock: Clock  # noqa: ANN001
) -> DisbursementReport:
    eligible_total = conn.execute(
        select(func.count()).select_from(Account).join(Kpm, Kpm.id == Account.kpm_id)
        .where(Account.kind == EMONEY, Kpm.first_period <= period)
    ).scalar_one()
    not_eligible = conn.execute(
        select(func.count()).select_from(Account).join(Kpm, Kpm.id == Account.kpm_id)
        .where(Account.kind == EMONEY, Kpm.first_period > period)
    ).scalar_one()
    without_emoney = (
        select(Kpm.id, Kpm.nik, Kpm.name)
        .where(~exists().where(and_(Account.kpm_id == Kpm.id, Account.kind == EMONEY)))
    )
    failed = conn.execute(select(func.count()).select_from(without_emoney.subquery())).scalar_one()
    sample = [_failure(conn, row) for row in conn.execute(without_emoney.order_by(Kpm.id).limit(FAILED_SAMPLE_MAX))]
    report = DisbursementReport(
        period=period,
        amount_idr=amount_idr,
        credited=credited,
        already_credited=eligible_total - credited,
        not_eligible=not_eligible,
        failed=failed,
        failed_sample=sample,
        total_idr=credited * amount_idr,
    )
    conn.execute(
        insert(DisbursementRun).values(
            period=period,
            amount_idr=amount_idr,
            credited=report.credited,
            already_credited=report.already_credited,
            not_eligible=report.not_eligible,
            failed=report.failed,
            started_at=started,
            finished_at=clock.now(),
        )
    )
    return report


def _failure(conn: Connection, row) -> dict:  # noqa: ANN001
    reason = conn.execute(
        select(SubAccountResult.reason)
        .where(SubAccountResult.kpm_id == row.id, SubAccountResult.kind == EMONEY)
        .order_by(SubAccountResult.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return {"kpm_id": row.id, "nik": row.nik, "name": row.name, "reason": reason or "Rekening e-money belum dibuka"}
