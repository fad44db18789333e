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


PAN_REF_MARKER = "f" * 64


def generic_plan_by_pan_ref(conn, statement) -> str:  # noqa: ANN001
    sql = str(statement.params(ref=PAN_REF_MARKER).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    assert f"'{PAN_REF_MARKER}'" in sql, sql
    sql = sql.replace(f"'{PAN_REF_MARKER}'", "$1")
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE by_pan_ref(text) AS {sql}")
    plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE by_pan_ref('{'0' * 64}')"))
    conn.exec_driver_sql("DEALLOCATE by_pan_ref")
    return plan


def add_many_cards(conn) -> None:  # noqa: ANN001
    """A bank's worth of cards, each with its own PAN reference."""
    conn.exec_driver_sql(
        f"""
        INSERT INTO cards (pan_ref, pan_masked, pan_sealed, kpm_id, issued_at)
        SELECT md5(n::text) || md5((n + 1)::text), '936000******0000', 'v1:x', kpm.id, now()
        FROM generate_series(1, {SKEW_ROWS}) AS n, (SELECT min(id) AS id FROM kpm) AS kpm
        """
    )
    conn.exec_driver_sql("ANALYZE cards")


@pytest.mark.parametrize("storage", ["postgresql"], indirect=True)
@pytest.mark.parametrize("statement_name", ["_CARD_STATE_BY_PAN_REF", "_LOCK_BY_PAN_REF", "_CARD_ID_BY_PAN_REF"])
def test_cards_are_found_by_pan_reference_through_its_index(bank, statement_name: str) -> None:  # noqa: ANN001
    """The hot path finds the card by the keyed hash of its PAN: the unique index on it."""
    from bank_penyalur import store

    with bank.runtime.db.engine.connect() as conn:
        add_many_cards(conn)
        plan = generic_plan_by_pan_ref(conn, getattr(store, statement_name))
        conn.rollback()
    assert "uq_cards_pan_ref" in plan, plan
    assert "Seq Scan on cards" not in plan, plan
