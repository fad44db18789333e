"""What an EDC terminal remembers between runs, as one JSON file per terminal.

`{data_dir}/edc/{tid}.json` holds the STAN counter, the batch number, the working keys (only
wrapped under the terminal master key, never in clear), reversals not yet answered by the switch,
the last approved purchase (so it can be voided) and a purchase whose answer is still awaited
(so a crash mid-flight still ends in a reversal). Writes are atomic: a temporary file in the
same directory, fsync, then os.replace.

Card numbers never rest in clear: in the file, field 2 of every stored message (the last
purchase, the pending reversals, the purchase in flight) is sealed with AES-GCM under a key
derived from the terminal master key (`shared.keys.derive(tmk, "edc-state/<tid>")`), bound to
the terminal id; it is opened again on load, so `TerminalState` in memory holds the messages as
they were sent. A file written before (version 1, field 2 in clear) still loads, and is sealed
at the next save.

The batches themselves (every purchase, offline sale and void, for settlement) are not here: this
file is rewritten whole on every save. They live in the batch store next to it,
`{data_dir}/edc/{tid}.batch.sqlite3` (`edc_terminal.batchstore`, `TerminalStore.open_batches`),
which is also the source of the open batch number; `TerminalState.batch` follows it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import keys as keylib
from shared.iso8583 import Message

if TYPE_CHECKING:
    from edc_terminal.batchstore import BatchStore

STAN_MAX = 999_999
JOURNAL_MAX = 999  # approved transactions kept on the terminal (oldest dropped first)
STATE_VERSION = 2  # 2: field 2 sealed in the file; 1: field 2 in clear (still read)
SEALED_PREFIX = "v1:"  # a sealed field 2: "v1:" + base64url(nonce (12) + ciphertext + tag (16))
_NONCE_BYTES = 12
_TID_PATTERN = re.compile(r"[A-Za-z0-9]{1,16}")


class StoreError(ValueError):
    """The state file cannot be read or is not a terminal state."""


@dataclass
class WorkingKeys:
    """TPK and TAK, each wrapped under the TMK (hex), with their key check values."""

    tpk: str
    tak: str
    tpk_kcv: str
    tak_kcv: str


@dataclass
class PendingReversal:
    """A reversal the switch has not answered yet. `message` is the 0400 as first built;
    every later attempt sends the same fields as a 0401 repeat."""

    message: Message
    created_at: str
    attempts: int = 0

    @property
    def stan(self) -> str:
        return self.message["11"]

    @property
    def original_data(self) -> str:
        return self.message["90"]


@dataclass
class LastPurchase:
    """The last approved purchase of this terminal (request without PIN block) for a void."""

    request: Message
    rrn: str
    approval_code: str
    approved_at: str


JOURNAL_PURCHASE = "purchase"
JOURNAL_VOID = "void"
JOURNAL_OFFLINE = "offline"  # a sale approved offline: no RRN yet, approval code "OF" + STAN


@dataclass
class JournalEntry:
    """An approved purchase, an offline sale, or the approved void of a purchase, in the
    terminal's own journal: for the batch count, and for the e-Warong to recover a sale it did
    not record. No PAN in clear."""

    kind: str  # "purchase", "void" or "offline"
    stan: str  # the purchase's STAN (for a void too)
    rrn: str  # "" for an offline sale
    approval_code: str
    amount_idr: int
    pan_masked: str
    at: str  # ISO time, WIB
    batch: int


@dataclass
class TerminalState:
    tid: str
    stan: int = 0  # the last STAN used; 0 when none was used yet
    batch: int = 1
    keys: WorkingKeys | None = None
    pending_reversals: list[PendingReversal] = field(default_factory=list)
    last_purchase: LastPurchase | None = None
    in_flight_purchase: Message | None = None
    journal: list[JournalEntry] = field(default_factory=list)
    last_receipt: str | None = None  # the last slip printed, for CETAK ULANG

    @property
    def batch_count(self) -> int:
        """Approved purchases and offline sales in the open batch, less the voids (as far as the
        bounded journal reaches; the batch store has the exact figures)."""
        entries = [e for e in self.journal if e.batch == self.batch]
        return sum(-1 if e.kind == JOURNAL_VOID else 1 for e in entries)

    def append_journal(self, entry: JournalEntry) -> None:
        self.journal.append(entry)
        del self.journal[:-JOURNAL_MAX]

    def next_stan(self) -> str:
        """Advance the counter (000001..999999, then 000001 again) and return it as field 11."""
        self.stan = self.stan % STAN_MAX + 1
        return f"{self.stan:06d}"

    def to_dict(self) -> dict[str, Any]:
        # Field by field: the journal (up to JOURNAL_MAX flat entries) is copied shallowly, which
        # keeps a save cheap on a busy terminal (dataclasses.asdict deep-copies every value).
        return {
            "version": STATE_VERSION,
            "tid": self.tid,
            "stan": self.stan,
            "batch": self.batch,
            "keys": asdict(self.keys) if self.keys else None,
            "pending_reversals": [asdict(p) for p in self.pending_reversals],
            "last_purchase": asdict(self.last_purchase) if self.last_purchase else None,
            "in_flight_purchase": dict(self.in_flight_purchase) if self.in_flight_purchase else None,
            "journal": [dict(vars(e)) for e in self.journal],
            "last_receipt": self.last_receipt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalState:
        keys = data.get("keys")
        last = data.get("last_purchase")
        return cls(
            tid=str(data["tid"]),
            stan=int(data["stan"]),
            batch=int(data["batch"]),
            keys=WorkingKeys(**keys) if keys else None,
            pending_reversals=[PendingReversal(**p) for p in data.get("pending_reversals", [])],
            last_purchase=LastPurchase(**last) if last else None,
            in_flight_purchase=data.get("in_flight_purchase"),
            journal=[JournalEntry(**e) for e in data.get("journal", [])],
            last_receipt=data.get("last_receipt"),
        )


def state_key(tmk: bytes, tid: str) -> bytes:
    """The AES-256 key that seals the card numbers in terminal `tid`'s state file."""
    return keylib.derive(tmk, f"edc-state/{tid}")


class CardSeal:
    """Seals field 2 of the messages kept in a terminal's state file, and opens it again."""

    def __init__(self, key: bytes, tid: str) -> None:
        self._aead = AESGCM(key)
        self._aad = f"edc-state/{tid}/2".encode()

    def seal(self, pan: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, pan.encode(), self._aad)).decode()

    def open(self, value: str) -> str:
        """The card number of a sealed field 2; a clear one (a version-1 file) as it is."""
        if not value.startswith(SEALED_PREFIX):
            return value
        try:
            raw = base64.urlsafe_b64decode(value[len(SEALED_PREFIX) :].encode("ascii"))
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._aad).decode()
        except (ValueError, InvalidTag):
            raise StoreError("a stored card number does not open under this terminal's master key") from None

    def message_out(self, message: Message | None) -> Message | None:
        if message is None or not isinstance(message.get("2"), str):
            return message
        return {**message, "2": self.seal(message["2"])}

    def message_in(self, message: Message | None) -> Message | None:
        if message is None or not isinstance(message.get("2"), str):
            return message
        return {**message, "2": self.open(message["2"])}

    def sealed(self, data: dict[str, Any]) -> dict[str, Any]:
        """`TerminalState.to_dict()` with every field 2 sealed."""
        return self._each_message(data, self.message_out)

    def opened(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._each_message(data, self.message_in)

    @staticmethod
    def _each_message(data: dict[str, Any], change) -> dict[str, Any]:  # noqa: ANN001
        out = dict(data)
        if isinstance(out.get("last_purchase"), dict):
            out["last_purchase"] = {**out["last_purchase"], "request": change(out["last_purchase"].get("request"))}
        if isinstance(out.get("pending_reversals"), list):
            out["pending_reversals"] = [
                {**p, "message": change(p.get("message"))} if isinstance(p, dict) else p for p in out["pending_reversals"]
            ]
        if isinstance(out.get("in_flight_purchase"), dict):
            out["in_flight_purchase"] = change(out["in_flight_purchase"])
        return out


class TerminalStore:
    """Load and save one terminal's state file.

    `tmk` is the terminal master key the card numbers in the file are sealed under (by a key
    derived from it); default: the terminal's demo TMK, the one `EdcCore.for_demo_terminal` uses."""

    def __init__(self, data_dir: Path | str, tid: str, tmk: bytes | None = None) -> None:
        if not _TID_PATTERN.fullmatch(tid):
            raise StoreError(f"terminal id must be letters and digits, got {tid!r}")
        self.tid = tid
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "edc" / f"{tid}.json"
        master = tmk if tmk is not None else bytes.fromhex(keylib.demo_terminal_master_key_hex(tid))
        self._master = master
        self._seal = CardSeal(state_key(master, tid), tid)

    def open_batches(self) -> BatchStore:
        """The terminal's batch store next to this file (`{tid}.batch.sqlite3`), card numbers
        sealed under the same key."""
        from edc_terminal.batchstore import BatchStore

        return BatchStore.open(self.data_dir, self.tid, self._master)

    def load(self) -> TerminalState:
        """The stored state, or a fresh one when the terminal has never run here."""
        if not self.path.exists():
            return TerminalState(tid=self.tid)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            state = TerminalState.from_dict(self._seal.opened(data))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.path}: not a readable terminal state ({exc})") from None
        if state.tid != self.tid:
            raise StoreError(f"{self.path}: holds terminal {state.tid!r}, expected {self.tid!r}")
        return state

    def save(self, state: TerminalState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = orjson.dumps(self._seal.sealed(state.to_dict()), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        fd, temp = tempfile.mkstemp(prefix=f".{self.tid}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


class MemoryStore:
    """A store that keeps the state in memory (for tests and throw-away terminals)."""

    def __init__(self, state: TerminalState) -> None:
        self.state = state
        self.saves = 0

    def load(self) -> TerminalState:
        return self.state

    def save(self, state: TerminalState) -> None:
        self.state = state
        self.saves += 1
