"""The audit log of the ops API: every operator and admin action, append-only and hash-chained.

Each record holds who (a token id, or "cli"), what (action and target), when, the bank it
concerns and the state before and after (JSON). Records are numbered `seq` = 1, 2, 3 ... and
chained: `prev_hash` is the hash of record `seq - 1` (64 zeros for the first) and `hash` is the
SHA-256 of the record's canonical serialisation, `prev_hash` included (`canonical`: JSON with
sorted keys, no spaces, UTF-8, the time as ISO 8601 with microseconds).

`verify` reads the chain in `seq` order and names the first record that breaks it: a record
edited (its hash no longer matches its contents), deleted (a gap in `seq`, or the next record's
link points to nothing) or reordered (a record moved to another `seq` no longer matches its
hash). Deleting the newest records leaves a shorter, valid chain: keep the summary line
(`records`, `last hash`) elsewhere to notice that.

A record is written in the same database transaction as the action it records. Appends are
serialised: on PostgreSQL by a table lock, on SQLite by its single writer; `seq` and `prev_hash`
are unique, so two appends can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, text

from switch.tables import AuditRecord

GENESIS_HASH = "0" * 64
VERIFY_BATCH_ROWS = 1_000

_audit = AuditRecord.__table__
_LAST = select(_audit.c.seq, _audit.c.hash).order_by(_audit.c.seq.desc()).limit(1)
_ALL = select(_audit).order_by(_audit.c.seq)


def _jsonable(value: Any) -> Any:  # noqa: ANN401 - any value put in a record
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def plain(value: Any) -> Any:  # noqa: ANN401
    """`value` as it comes back from a JSON column: what is stored is what is hashed."""
    return None if value is None else json.loads(json.dumps(value, default=_jsonable))


def canonical(seq: int, at: datetime, actor: str, action: str, target: str, bank: str | None,
              before: Any, after: Any, prev_hash: str) -> bytes:  # noqa: ANN401
    document = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "bank": bank,
        "before": before,
        "after": after,
        "prev_hash": prev_hash,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(row: Any) -> str:  # noqa: ANN401 - a row or record with the columns of ops_audit
    body = canonical(row.seq, row.at, row.actor, row.action, row.target, row.bank_code, row.before, row.after, row.prev_hash)
    return hashlib.sha256(body).hexdigest()


def shown(hash_hex: str) -> str:
    """A hash as shown to people: hex in groups of 8 (`1f2e3d4c-...`), so that no run of digits
    in it looks like a card number to the filters that mask them."""
    return "-".join(hash_hex[i : i + 8] for i in range(0, len(hash_hex), 8))


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    bank_code: str | None
    before: Any
    after: Any
    prev_hash: str
    hash: str


def append(conn: Connection, actor: str, action: str, target: str, bank: str | None,
           before: Any, after: Any, at: datetime) -> Entry:  # noqa: ANN401
    """Append one record, chained to the newest, inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE ops_audit IN EXCLUSIVE MODE"))  # readers go on; appenders queue
    last = conn.execute(_LAST).one_or_none()
    seq, prev_hash = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_HASH)
    values = {"seq": seq, "at": at, "actor": actor, "action": action, "target": target[:60], "bank_code": bank,
              "before": plain(before), "after": plain(after), "prev_hash": prev_hash}
    entry = Entry(**values, hash="")
    values["hash"] = record_hash(entry)
    conn.execute(insert(_audit), values)
    return Entry(**values)


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    last_seq: int | None
    last_hash: str
    broken_seq: int | None = None  # the first record that breaks the chain
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def summary(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.records} records, last hash {shown(self.last_hash)}"
        return f"audit chain broken at record {self.broken_seq}: {self.problem}"


def _rows(conn: Connection) -> Iterator[Any]:
    result = conn.execution_options(yield_per=VERIFY_BATCH_ROWS).execute(_ALL)
    yield from result


def verify(conn: Connection) -> Verification:
    """Walk the chain from the first record; stop at the first one that breaks it."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in _rows(conn):
        problem = _problem(row, expected_seq, prev_hash)
        if problem is not None:
            return Verification(count, expected_seq - 1 or None, prev_hash, row.seq, problem)
        expected_seq, prev_hash, count = row.seq + 1, row.hash, count + 1
    return Verification(count, expected_seq - 1 or None, prev_hash)


def _problem(row: Any, expected_seq: int, prev_hash: str) -> str | None:  # noqa: ANN401
    if row.seq != expected_seq:
        return f"expected record {expected_seq} here: record {expected_seq} was deleted or moved"
    if record_hash(row) != row.hash:
        return "its contents do not match its hash: it was edited, or moved from another place in the chain"
    if row.prev_hash != prev_hash:
        return "its link does not match the hash of the record before it: a record was deleted, replaced or reordered"
    return None


def entries(conn: Connection, bank: str | None, limit: int, before_seq: int | None = None) -> list[Entry]:
    """The newest records first; only those concerning `bank` when given."""
    query = select(_audit).order_by(_audit.c.seq.desc()).limit(limit)
    if bank is not None:
        query = query.where(_audit.c.bank_code == bank)
    if before_seq is not None:
        query = query.where(_audit.c.seq < before_seq)
    return [Entry(**{name: getattr(row, name) for name in Entry.__slots__}) for row in conn.execute(query)]
