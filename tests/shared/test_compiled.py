"""Compiled statements give what `Connection.execute` gives, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest
from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from shared.compiled import Compiled, PerDialect, keys_in, keys_parameters
from shared.db import Database, sqlite_url

metadata = MetaData()
entries = Table(
    "entries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("code", String(8), unique=True),
    Column("day", Date),
    Column("at", DateTime),
    Column("flag", Boolean),
    Column("amount_idr", BigInteger),
)
COLUMNS = ("code", "day", "at", "flag", "amount_idr")
APPEND = PerDialect(insert(entries).returning(entries.c.id), column_keys=COLUMNS)
BY_CODE = PerDialect(select(entries).where(entries.c.code == bindparam("code")))
FLAGGED_ABOVE = PerDialect(
    select(entries.c.code).where(entries.c.flag.is_(True), entries.c.amount_idr > bindparam("floor"), entries.c.day == date(2026, 11, 25))
)
BY_CODE_AND_DAY = PerDialect(lambda dialect_name: select(entries.c.code).where(keys_in((entries.c.code, entries.c.day), "keys", dialect_name)))


@pytest.fixture
def db(storage: dict) -> Iterator[Database]:
    url = storage.get("database_url") or sqlite_url(storage["data_dir"], "compiled")
    database = Database(url, schema=storage.get("db_schema"))
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def row(code: str, amount_idr: int = 10_000, flag: bool = True) -> dict:
    return {"code": code, "day": date(2026, 11, 25), "at": datetime(2026, 11, 25, 9, 30, 15, 250), "flag": flag, "amount_idr": amount_idr}


def test_a_row_reads_back_with_its_python_types(db: Database) -> None:
    with db.begin() as conn:
        new_id = APPEND.on(conn).scalar(conn, row("A1"))
        found = BY_CODE.on(conn).one_or_none(conn, {"code": "A1"})
        via_core = conn.execute(select(entries).where(entries.c.code == "A1")).one()
    assert found is not None and found.id == new_id
    assert tuple(found) == tuple(via_core)
    assert (found.day, found.at, found.flag) == (date(2026, 11, 25), datetime(2026, 11, 25, 9, 30, 15, 250), True)


def test_a_missing_row_is_none(db: Database) -> None:
    with db.read() as conn:
        assert BY_CODE.on(conn).one_or_none(conn, {"code": "none"}) is None
        assert BY_CODE.on(conn).scalar(conn, {"code": "none"}) is None


def test_literal_values_in_the_statement_are_bound_for_every_run(db: Database) -> None:
    with db.begin() as conn:
        for code, amount_idr, flag in (("B1", 5_000, True), ("B2", 50_000, True), ("B3", 50_000, False)):
            APPEND.on(conn).run(conn, row(code, amount_idr, flag))
        assert FLAGGED_ABOVE.on(conn).scalar(conn, {"floor": 10_000}) == "B2"


def test_a_duplicate_key_is_an_integrity_error_and_the_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(IntegrityError), db.begin() as conn:
        APPEND.on(conn).run(conn, row("C1"))
        APPEND.on(conn).run(conn, row("C1"))
    with db.read() as conn:
        assert BY_CODE.on(conn).one_or_none(conn, {"code": "C1"}) is None


def test_an_expanding_in_list_is_refused_when_compiled(db: Database) -> None:
    with db.read() as conn, pytest.raises(AssertionError, match="plain binds only"):
        Compiled(select(entries).where(entries.c.code.in_(("x", "y"))), conn.dialect)


def test_keys_match_whole_not_every_combination_of_their_parts(db: Database) -> None:
    first, second = date(2026, 11, 25), date(2026, 11, 26)
    with db.begin() as conn:
        APPEND.on(conn).run_many(conn, [row("a") | {"day": first}, row("b") | {"day": second}, row("c") | {"day": first}])
    with db.read() as conn:
        statement = BY_CODE_AND_DAY.on(conn)
        crossed = statement.all(conn, keys_parameters(conn, "keys", [("a", second), ("b", first)], 2))
        exact = statement.all(conn, keys_parameters(conn, "keys", [("a", first), ("b", second), ("z", first)], 2))
        one = statement.all(conn, keys_parameters(conn, "keys", [("c", first)], 2))
    assert crossed == []  # each part is in some key, but no row is one of the keys
    assert sorted(r.code for r in exact) == ["a", "b"]
    assert [r.code for r in one] == ["c"]


def test_keys_of_the_wrong_width_are_refused(db: Database) -> None:
    with db.read() as conn, pytest.raises(AssertionError, match="2 parts"):
        keys_parameters(conn, "keys", [("a",)], 2)


@pytest.mark.parametrize("storage", ["postgresql"], indirect=True)
def test_a_list_statement_is_planned_for_each_list_on_postgresql(db: Database) -> None:
    # A server-side prepared statement keeps its generic plan, made once for an assumed list
    # length and the table as it was then (a scan while it was empty), however the table grows.
    day = date(2026, 11, 25)
    with db.begin() as conn:
        APPEND.on(conn).run_many(conn, [row("a"), row("b")])
        for _ in range(10):  # psycopg prepares a statement on its 5th execution
            assert len(BY_CODE_AND_DAY.on(conn).all(conn, keys_parameters(conn, "keys", [("a", day), ("b", day)], 2))) == 2
            assert BY_CODE.on(conn).one_or_none(conn, {"code": "a"}) is not None
        prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
    assert any("entries.code = $1" in statement for statement in prepared)  # a single key: prepared
    assert not any("unnest" in statement for statement in prepared)
