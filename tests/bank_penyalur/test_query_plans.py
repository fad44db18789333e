"""Query plans that must hold at scale on PostgreSQL.

psycopg prepares statements that run often, and PostgreSQL then plans them once for any
parameter (a generic plan). The balance lookup must stay on an index in that plan: every
disbursement debits the one program account, and a plan that scans the transfers would read
a million rows per purchase in a real bank.
"""

from __future__ import annotations

import pytest
from sqlalchemy import literal, select

from bank_penyalur.ledger import balance_expr

pytestmark = pytest.mark.postgres

ACCOUNT_MARKER = 987654321


def generic_plan(conn, statement) -> str:  # noqa: ANN001
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    sql = sql.replace(str(ACCOUNT_MARKER), "$1")
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE balance_lookup(int) AS {sql}")
    plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN EXECUTE balance_lookup(1)"))
    conn.exec_driver_sql("DEALLOCATE balance_lookup")
    return plan


SKEW_ROWS = 20_000


def add_disbursement_history(conn) -> None:  # noqa: ANN001
    """Years of monthly credits: many transfers, all debiting the program account."""
    conn.exec_driver_sql(
        f"""
        INSERT INTO transfers (debit_account_id, credit_account_id, amount_idr, kind, period, created_at)
        SELECT program.id, kpm.id, 150000, 'disbursement', 'H' || lpad(n::text, 6, '0'), now()
        FROM generate_series(1, {SKEW_ROWS}) AS n,
             (SELECT id FROM accounts WHERE kind = 'program') AS program,
             (SELECT min(id) AS id FROM accounts WHERE kind = 'emoney') AS kpm
        """
    )
    conn.exec_driver_sql("ANALYZE transfers")


@pytest.mark.parametrize("storage", ["postgresql"], indirect=True)  # generic plans are PostgreSQL's
def test_the_balance_of_an_account_is_read_through_indexes_in_a_generic_plan(bank) -> None:  # noqa: ANN001
    with bank.runtime.db.engine.connect() as conn:
        add_disbursement_history(conn)
        plan = generic_plan(conn, select(balance_expr(literal(ACCOUNT_MARKER))))
        conn.rollback()
    assert "Seq Scan" not in plan, plan
    assert "ix_transfers_debit_spending" in plan and "ix_transfers_credit" in plan, plan
