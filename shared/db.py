"""Engines for one service's database: an SQLite file (default) or a PostgreSQL schema.

Write transactions that need serialising take row locks on PostgreSQL (`SELECT ... FOR
UPDATE`); on SQLite every write transaction takes the write lock at BEGIN (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_STATEMENT_TIMEOUT_MS = 30_000
PG_LOCK_TIMEOUT_MS = 10_000


def sqlite_url(data_dir: Path, name: str) -> str:
    """The SQLite file `<name>.sqlite3` in the data directory."""
    return f"sqlite+pysqlite:///{data_dir / f'{name}.sqlite3'}"


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_AFTER_COMMIT = "sembako.after_commit"


def json_text(value: object) -> str:
    """JSON columns' text, by orjson (the journal writes a JSON document per message: the
    standard library's encoder was a measurable part of the switch's CPU per message)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def after_commit(conn: Connection, action: Callable[[], None]) -> None:
    """Run `action` once the write transaction of `conn` (begun by `Database.begin`) has
    committed; never when it rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(action)


class Database:
    """A service's storage: a write engine and a read engine over the same database."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 20) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.schema = schema if self.dialect == "postgresql" else None
        self._writer = threading.Lock() if self.dialect == "sqlite" else nullcontext()
        if self.dialect == "sqlite":
            self._prepare_sqlite_file()
            self.engine = self._sqlite_engine(immediate=True, pool_size=pool_size)
            self.read_engine = self._sqlite_engine(immediate=False, pool_size=pool_size)
        elif self.dialect == "postgresql":
            self._ensure_schema()
            self.engine = self._pg_engine(pool_size)
            self.read_engine = self.engine
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    @property
    def locks_rows(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on any error.

        SQLite has one writer at a time; threads of this process queue on a lock instead of
        polling the file lock (BEGIN IMMEDIATE still guards against other processes).
        """
        with self._writer, self.engine.begin() as conn:
            conn.info.pop(_AFTER_COMMIT, None)  # nothing left from a transaction begun elsewhere
            try:
                yield conn
            finally:
                actions = conn.info.pop(_AFTER_COMMIT, [])
        for action in actions:  # committed: no exception left the block
            action()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.read_engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()

    def _prepare_sqlite_file(self) -> None:
        database = make_url(self.url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    def _sqlite_engine(self, *, immediate: bool, pool_size: int) -> Engine:
        engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            json_serializer=json_text,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin_sql)

        return engine

    def _pg_options(self) -> str:
        options = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}"
        if self.schema:
            options += f" -c search_path={self.schema}"
        return options

    def _pg_engine(self, pool_size: int) -> Engine:
        return create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            pool_recycle=3600,
            connect_args={"options": self._pg_options(), "connect_timeout": 10},
            json_serializer=json_text,
        )

    def _ensure_schema(self) -> None:
        if not self.schema:
            return
        if not self.schema.replace("_", "").isalnum():
            raise ValueError(f"schema name must be letters, digits and '_': {self.schema!r}")
        bootstrap = create_engine(self.url, connect_args={"connect_timeout": 10})
        try:
            with bootstrap.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        finally:
            bootstrap.dispose()

    def drop_schema(self) -> None:
        """Drop this database's PostgreSQL schema (tests and resets only)."""
        assert self.dialect == "postgresql" and self.schema
        self.dispose()
        bootstrap = create_engine(self.url)
        try:
            with bootstrap.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            bootstrap.dispose()
