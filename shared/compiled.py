"""Core statements compiled once per database and run on the driver's cursor: the hot path.

`Connection.execute` pays, on every call, for a compiled-cache lookup, an execution context,
parameter processing through generic machinery and a Result object: about as much CPU as the
database spends on a primary-key lookup. For the few statements of an authorisation, a
`Compiled` statement does that work once: the SQL text, the order of its parameters and the
type conversions (bind and result processors, e.g. dates as text on SQLite) are taken from
SQLAlchemy's own compilation for the database's dialect, and each call is one
`cursor.execute` inside the caller's SQLAlchemy transaction. On PostgreSQL psycopg prepares
the statement on the server after a few executions, except a statement with a list parameter,
which is planned for each list it is given (see `Compiled.__init__`).

Only for statements with plain bound parameters (no expanding IN, no literal rendering).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, Select, String, any_, bindparam, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import ColumnElement

Processor = Callable[[Any], Any]


class Compiled:
    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        """`column_keys`: for an INSERT, the columns it is given (as `Connection.execute` infers
        them from its parameters)."""
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        assert not any(bind.expanding or bind.literal_execute for bind in binds.values()), "plain binds only"
        self.sql = str(compiled)
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error
        self._returning_many = dialect.name == "postgresql"  # psycopg: executemany(returning=True)
        # A list parameter (`in_list`, `keys_in`) is planned for each execution, for the list it
        # brings: never prepared on the server, whose generic plan is made once, for a list of an
        # assumed length and for the tables as they were then (a scan of a table then empty), and
        # kept however the tables grow. The single-key statements keep their generic plans.
        arrays = dialect.name == "postgresql" and any(isinstance(bind.type, ARRAY) for bind in binds.values())
        self._execute_options: dict[str, bool] = {"prepare": False} if arrays else {}
        self._positional = compiled.positiontup is not None
        self._names: tuple[str, ...] = tuple(compiled.positiontup) if self._positional else tuple(binds)
        self._bind = {
            name: processor
            for name, bind in binds.items()
            if (processor := dialect.type_descriptor(bind.type).bind_processor(dialect)) is not None
        }
        self._fixed = {name: bind.value for name, bind in binds.items() if not bind.required and bind.callable is None}
        columns = _selected(statement)
        self.columns: tuple[str, ...] = tuple(column.key for column in columns)
        self._result = tuple(dialect.type_descriptor(column.type).result_processor(dialect, None) for column in columns)
        self._row = NamedTuple("Row", [(name, Any) for name in self.columns]) if columns else None  # type: ignore[misc]

    def parameters(self, params: Mapping[str, Any]) -> tuple | dict:
        values = {name: params[name] if name in params else self._fixed[name] for name in self._names}
        for name, processor in self._bind.items():
            values[name] = processor(values[name])
        return tuple(values[name] for name in self._names) if self._positional else values

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:  # noqa: ANN401 - the driver's cursor
        """Run on `conn`'s driver connection; a driver error is raised as SQLAlchemy raises it
        for its own statements (IntegrityError on a duplicate key, ...)."""
        cursor = conn.connection.driver_connection.cursor()
        parameters = self.parameters(params)
        try:
            cursor.execute(self.sql, parameters, **self._execute_options)
        except self._driver_error as exc:
            cursor.close()
            raise DBAPIError.instance(self.sql, parameters, exc, self._driver_error) from exc
        return cursor

    def one_or_none(self, conn: Connection, params: Mapping[str, Any]) -> tuple | None:
        """The one row (a named tuple of the selected columns), or None."""
        cursor = self.execute(conn, params)
        try:
            row = cursor.fetchone()
            assert cursor.fetchone() is None, f"more than one row from {self.sql!r}"
        finally:
            cursor.close()
        return None if row is None else self._convert(row)

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:  # noqa: ANN401 - a column value
        """The first column of the one row, or None when there is no row."""
        row = self.one_or_none(conn, params)
        return None if row is None else row[0]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute a statement whose rows, if any, are not wanted."""
        self.execute(conn, params).close()

    def run_many(self, conn: Connection, many: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set in one driver call (`executemany`: pipelined on
        PostgreSQL, one prepared statement on SQLite); rows, if any, are not wanted."""
        if many:
            self._execute_many(conn, many).close()

    def scalars_many(self, conn: Connection, many: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The first column of the one row each parameter set returns (an INSERT ... RETURNING),
        in the order given: one pipelined driver call on PostgreSQL, one call each on SQLite."""
        if not self._returning_many:
            return [self.scalar(conn, params) for params in many]
        if not many:
            return []
        cursor = self._execute_many(conn, many, returning=True)
        values = []
        try:
            while True:
                row = cursor.fetchone()
                assert row is not None and cursor.fetchone() is None, f"one row each from {self.sql!r}"
                values.append(self._convert(row)[0])
                if not cursor.nextset():
                    break
        finally:
            cursor.close()
        assert len(values) == len(many), (len(values), len(many))
        return values

    def _execute_many(self, conn: Connection, many: Sequence[Mapping[str, Any]], **options: bool) -> Any:  # noqa: ANN401 - the driver's cursor
        """`execute` for many parameter sets in one `executemany`."""
        cursor = conn.connection.driver_connection.cursor()
        parameters = [self.parameters(params) for params in many]
        try:
            cursor.executemany(self.sql, parameters, **options)
        except self._driver_error as exc:
            cursor.close()
            raise DBAPIError.instance(self.sql, parameters, exc, self._driver_error) from exc
        return cursor

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Every row (named tuples of the selected columns)."""
        cursor = self.execute(conn, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return [self._convert(row) for row in rows]

    def _convert(self, row: tuple) -> tuple:
        values = [value if processor is None else processor(value) for value, processor in zip(row, self._result, strict=True)]
        assert self._row is not None
        return self._row(*values)


def _selected(statement: ClauseElement) -> list[ColumnElement]:
    """The columns a SELECT returns, or the RETURNING columns of an INSERT (else none)."""
    if isinstance(statement, Select):
        return list(statement.selected_columns)
    return list(getattr(statement, "exported_columns", ()))


class PerDialect:
    """A statement's `Compiled` form for each dialect it meets, made on first use.

    `statement` is one statement for every dialect, or a function of the dialect's name giving
    the statement for it (where the SQL differs, e.g. a list parameter: see `in_list`)."""

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement], column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = column_keys
        self._by_dialect: dict[str, Compiled] = {}

    def on(self, conn: Connection) -> Compiled:
        dialect = conn.dialect
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            statement = self.statement if isinstance(self.statement, ClauseElement) else self.statement(dialect.name)
            compiled = self._by_dialect.setdefault(dialect.name, Compiled(statement, dialect, self.column_keys))
        return compiled


def in_list(column: ColumnElement, name: str, dialect_name: str) -> ColumnElement:
    """`column` is one of the values of the list parameter `name`, with one plain bind whatever
    the list's length (so the statement compiles once): `= ANY(array)` on PostgreSQL, `IN` the
    rows of a JSON array on SQLite. Pass the list through `list_parameter`."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    values = select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=String)))
    return column.in_(values.scalar_subquery())


def list_parameter(conn: Connection, values: Sequence[Any]) -> Any:  # noqa: ANN401 - the driver's form
    """`values` as `in_list` takes them on `conn`'s database: a list, or JSON text (dates as ISO text)."""
    if conn.dialect.name == "postgresql":
        return list(values)
    return json.dumps([_json_value(value) for value in values])


def keys_in(columns: Sequence[ColumnElement], name: str, dialect_name: str) -> ColumnElement:
    """The row of `columns` is one of the keys (rows) of the list parameter `name`: exactly those
    keys, looked up one by one in an index on the columns, where one `in_list` per column would
    match every combination of their parts (a batch of 64 terminals' STANs: 4,096 index probes on
    PostgreSQL, or a scan). PostgreSQL: `IN` the rows of `unnest` of one array per column; SQLite:
    `IN` the rows of a JSON array of arrays. Pass the keys through `keys_parameters`."""
    if dialect_name == "postgresql":
        arrays = [bindparam(f"{name}_{i}", type_=ARRAY(column.type)) for i, column in enumerate(columns)]
        keys = func.unnest(*arrays).table_valued(*(f"part_{i}" for i in range(len(columns)))).render_derived(name=name)
        return tuple_(*columns).in_(select(*keys.c))
    value = literal_column("value")
    parts = [func.json_extract(value, literal_column(f"'$[{i}]'")) for i in range(len(columns))]
    return tuple_(*columns).in_(select(*parts).select_from(func.json_each(bindparam(name, type_=String))))


def keys_parameters(conn: Connection, name: str, keys: Sequence[Sequence[Any]], width: int) -> dict[str, Any]:
    """The parameters `keys_in(<width columns>, name, ...)` takes on `conn`'s database for `keys`."""
    assert all(len(key) == width for key in keys), f"every key of {name!r} has {width} parts"
    if conn.dialect.name == "postgresql":
        return {f"{name}_{i}": [key[i] for key in keys] for i in range(width)}
    return {name: json.dumps([[_json_value(part) for part in key] for key in keys])}


def _json_value(value: Any) -> Any:  # noqa: ANN401 - any value a column holds
    return value.isoformat() if isinstance(value, date) else value
