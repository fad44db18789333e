"""The audit log of the ops API: every operator and admin action, append-only and hash-chained.

Each record holds who (a token id, or "cli"), what (action and target), when, the bank it
concerns and the state before and after (JSON). Records are numbered `seq` = 1, 2, 3 ... and
chained: `prev_hash` is the hash of record `seq - 1` (64 zeros for the first) and `hash` is the
SHA-256 of the record's canonical serialisation, `prev_hash` included (`canonical`: JSON with
sorted keys, no spaces, UTF-8, the time as ISO 8601 with microseconds).

`verify` reads the chain in `seq` order and names the first record that breaks it: a record
edited (its hash no longer matches its contents), deleted (a gap in `seq`, or the next record's
link points to nothing) or reordered (a record moved to another `seq` no longer matches its
hash). Deleting the newest records leaves a shorter chain that is valid in itself: the *anchor
file* sees that. Where the switch has a data directory, each record's `seq` and `hash` are also
appended to `<data-dir>/ops-audit.anchor` once its transaction has committed, and `verify` checks
every line of it against the chain: a record the anchor saw and the chain no longer holds (or
holds with another hash) breaks it. The anchor only adds: without one (or with lines missing, as
after a crash between the commit and the write) the chain is checked as before, and the summary
says whether an anchor was there.

A record is written in the same database transaction as the action it records. Appends are
serialised: on PostgreSQL by a table lock, on SQLite by its single writer; `seq` and `prev_hash`
are unique, so two appends can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from shared.db import Database, after_commit
from switch.tables import AuditRecord

GENESIS_HASH = "0" * 64
VERIFY_BATCH_ROWS = 1_000
ANCHOR_FILE_NAME = "ops-audit.anchor"
ANCHOR_LINE_BYTES_MAX = 96

log = logging.getLogger("switch.ops.audit")

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


class AnchorError(ValueError):
    """The anchor file cannot be read as one: names the line."""


class AuditAnchor:
    """The second witness of the chain, outside the database: one line `seq hash` per record,
    appended (O_APPEND, fsync) after the record's transaction commits."""

    _LINE = re.compile(rb"([1-9][0-9]{0,18}) ([0-9a-f]{64})")

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, seq: int, hash_hex: str) -> None:
        line = f"{seq} {hash_hex}\n".encode()
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:  # the action is committed; the anchor only misses a line
            log.warning("audit record %d not written to the anchor file %s: %s", seq, self.path, exc.strerror)

    def read(self) -> dict[int, str] | None:
        """seq -> hash of every line; None when there is no anchor file."""
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return None
        seen: dict[int, str] = {}
        with file:
            for number, line in enumerate(file, start=1):
                match = self._LINE.fullmatch(line.rstrip(b"\n")) if len(line) <= ANCHOR_LINE_BYTES_MAX else None
                if match is None:
                    raise AnchorError(f"{self.path}: line {number} is not `seq hash`")
                seen.setdefault(int(match.group(1)), match.group(2).decode())  # a later line for it: a replacement
        return seen


_ANCHORS: weakref.WeakKeyDictionary[Engine, AuditAnchor] = weakref.WeakKeyDictionary()


def anchor_in(data_dir: Path) -> AuditAnchor | None:
    """The anchor file of the switch whose data directory is `data_dir`; None when there is no
    such directory (a switch on PostgreSQL started without one)."""
    return AuditAnchor(data_dir / ANCHOR_FILE_NAME) if data_dir.is_dir() else None


def keep_anchor(db: Database, anchor: AuditAnchor | None) -> None:
    """From now on, records appended through `db` are written to `anchor` as well."""
    if anchor is not None:
        _ANCHORS[db.engine] = anchor


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
    anchor = _ANCHORS.get(conn.engine)
    if anchor is not None:
        after_commit(conn, lambda: anchor.add(seq, values["hash"]))
    return Entry(**values)


@dataclass(frozen=True, slots=True)
class Verification:
    records: int
    last_seq: int | None
    last_hash: str
    broken_seq: int | None = None  # the first record that breaks the chain
    problem: str | None = None
    anchored: int | None = None  # records the anchor file saw; None: no anchor file

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def summary(self) -> str:
        if not self.ok:
            return f"audit chain broken at record {self.broken_seq}: {self.problem}"
        witness = (
            "no anchor file, so a deletion of the newest records cannot be seen"
            if self.anchored is None
            else f"the anchor file agrees ({self.anchored} records seen)"
        )
        return f"audit chain intact: {self.records} records, last hash {shown(self.last_hash)}; {witness}"


def _rows(conn: Connection) -> Iterator[Any]:
    result = conn.execution_options(yield_per=VERIFY_BATCH_ROWS).execute(_ALL)
    yield from result


def verify(conn: Connection, anchored: dict[int, str] | None = None) -> Verification:
    """Walk the chain from the first record; stop at the first one that breaks it. `anchored`:
    the anchor file's lines (`AuditAnchor.read`, read before the chain), each checked too."""
    seen = {} if anchored is None else anchored
    witnessed = None if anchored is None else len(anchored)
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    for row in _rows(conn):
        problem = _problem(row, expected_seq, prev_hash) or _unlike_anchor(row, seen)
        if problem is not None:
            return Verification(count, expected_seq - 1 or None, prev_hash, row.seq, problem, witnessed)
        expected_seq, prev_hash, count = row.seq + 1, row.hash, count + 1
    newest_seen = max(seen, default=0)
    if newest_seen >= expected_seq:
        problem = (f"the anchor file saw records up to {newest_seen}, the chain ends at {expected_seq - 1}: "
                   "the newest records were deleted")
        return Verification(count, expected_seq - 1 or None, prev_hash, expected_seq, problem, witnessed)
    return Verification(count, expected_seq - 1 or None, prev_hash, anchored=witnessed)


def _unlike_anchor(row: Any, seen: dict[int, str]) -> str | None:  # noqa: ANN401
    anchored = seen.get(row.seq)
    if anchored is None or anchored == row.hash:
        return None
    return "it is not the record the anchor file saw here: it was replaced"


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
