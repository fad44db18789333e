"""No card data at rest in clear: a real network (a BNI bank process and the switch on SQLite, the
headless EDC, a raw terminal) runs signon, cek, bayar, a reversal and a purchase the frozen bank
leaves unanswered (so a stored reversal is made and delivered); then every file written under
the network's data directory is scanned, as bytes and (SQLite) row by row, for the full PAN of
each card used, its PIN, every PIN block sent (under the TPK and as translated to the ZPK) and
the hex of every key (TMKs, TPK/TAK in clear, LMK, ZPK, PVK, PAN keys). Each data store is its
own case, so a failure names the store, the file and what was found."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared import iso8583, keys, pinblock, protocol, rc
from shared.banks import get_bank
from shared.keys import demo_key_hex, demo_terminal_master_key_hex

from bank_penyalur.demo import fixture, generator
from tests.bounded import wait_until
from tests.switch.network import Network, raw_terminal

BNI = get_bank("bni")
EDC_TID = "BNI00002"
STORES = ("bank-db", "switch-db", "edc-state", "logs", "ewarong-db", "other")


@dataclass
class Secrets:
    """What must never be found at rest: name -> text (searched as text, hex case-insensitive)."""

    items: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.items[name] = value


@dataclass
class Run:
    data_dir: Path
    secrets: Secrets



def edc_exchanges(network: Network, command: str, **inputs) -> tuple[dict, list]:  # noqa: ANN003
    from edc_terminal.headless import run
    from edc_terminal.inspector import Inspector

    inspector = Inspector()
    answer = asyncio.run(
        run(command, EDC_TID, "127.0.0.1", network.iso_port, network.tmp / "edc", timeout_ms=5_000, inspector=inspector, **inputs)
    )
    return answer, inspector.exchanges


def _file_logging(data_dir: Path) -> tuple[logging.Handler, dict[str, int]]:
    """The switch runs in this process: its log lines (and the EDC's) go to a file in the data dir."""
    (data_dir / "logs").mkdir(exist_ok=True)
    handler = logging.FileHandler(data_dir / "logs" / "switch-and-edc.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    levels = {}
    for name in ("switch", "edc_terminal", "shared", "httpx"):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    return handler, levels


@pytest.fixture(scope="module")
def network_run(tmp_path_factory) -> Iterator[Run]:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("at-rest")
    handler, levels = _file_logging(tmp)
    secrets = Secrets()
    for name, key_hex in (
        ("LMK", demo_key_hex("switch", "lmk")),
        ("ZPK bni", demo_key_hex("bni", "zpk")),
        ("PVK bni", demo_key_hex("bni", "pvk")),
        ("switch PAN hash key", demo_key_hex("switch", "pan_hash")),
        ("switch PAN key", demo_key_hex("switch", "pan")),
        ("bank PAN hash key", demo_key_hex("bni", "pan_hash")),
        ("bank PAN key", demo_key_hex("bni", "pan")),
    ):
        secrets.add(name, key_hex)
    zpk = bytes.fromhex(demo_key_hex("bni", "zpk"))
    network = Network(tmp, {"data_dir": tmp}).start()
    try:
        # The headless EDC: signon, cek, bayar, reversal of the bayar, with the named demo card.
        card = next(c for c in fixture.demo_cards(BNI) if c.label == "normal")
        secrets.add(f"PAN of demo card {card.label}", card.pan)
        secrets.add(f"PIN of demo card {card.label}", card.pin)
        tmk = bytes.fromhex(demo_terminal_master_key_hex(EDC_TID))
        secrets.add(f"TMK {EDC_TID}", tmk.hex())
        exchanges = []
        answer, got = edc_exchanges(network, "signon")
        exchanges += got
        assert answer["rc"] == rc.APPROVED, answer
        for command, inputs in (("cek", {}), ("bayar", {"amount_idr": 12_500})):
            answer, got = edc_exchanges(network, command, pan=card.pan, pin=card.pin, **inputs)
            exchanges += got
            assert answer["rc"] == rc.APPROVED, answer
        answer, got = edc_exchanges(network, "reversal")
        exchanges += got
        assert answer["rc"] == rc.APPROVED, answer
        tpk = None
        for exchange in exchanges:
            if exchange.answer is not None:
                reply = iso8583.decode(exchange.answer)
                if reply.get("39") == rc.APPROVED and "48" in reply and len(str(reply["48"])) >= 76:
                    tpk_wrapped, tak_wrapped, _, _ = protocol.parse_keys_field(str(reply["48"]))
                    tpk, tak = keys.unwrap(tmk, tpk_wrapped), keys.unwrap(tmk, tak_wrapped)
                    secrets.add(f"TPK {EDC_TID}", tpk.hex())
                    secrets.add(f"TAK {EDC_TID}", tak.hex())
        assert tpk is not None, "no key exchange seen"
        for exchange in exchanges:
            request = iso8583.decode(exchange.request)
            if "52" in request:
                block = str(request["52"])
                secrets.add(f"PIN block (TPK) of STAN {request['11']}", block)
                translated = pinblock.translate(bytes.fromhex(block), str(request["2"]), tpk, zpk).hex()
                secrets.add(f"PIN block (ZPK) of STAN {request['11']}", translated)

        # A raw terminal, and a purchase the frozen bank leaves unanswered: a stored reversal.
        person = next(p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable)
        secrets.add("PAN of generated card", person.pan)
        secrets.add("PIN of generated card", person.pin)
        terminal = raw_terminal(network, serial=1)
        try:
            assert terminal.sign_on()["39"] == rc.APPROVED
            secrets.add("TMK BNI00001", demo_terminal_master_key_hex("BNI00001"))
            secrets.add("TPK BNI00001", terminal.tpk.hex())
            secrets.add("TAK BNI00001", terminal.tak.hex())
            assert terminal.inquiry(person.pan, person.pin)["39"] == rc.APPROVED
            doc = terminal.purchase_doc(person.pan, person.pin, 20_000)
            for request in (doc,):
                secrets.add(f"PIN block (TPK) of STAN {request['11']}", str(request["52"]))
                translated = pinblock.translate(bytes.fromhex(str(request["52"])), person.pan, terminal.tpk, zpk).hex()
                secrets.add(f"PIN block (ZPK) of STAN {request['11']}", translated)
            network.banks["bni"].freeze()
            try:
                assert terminal.exchange(doc)["39"] == rc.ISSUER_UNAVAILABLE
                assert network.switch.journal.pending_saf() != []
            finally:
                network.banks["bni"].thaw()
            assert wait_until(lambda: network.switch.journal.pending_saf() == [])
            assert wait_until(lambda: network.balance_of(person.pan) == 150_000)
        finally:
            terminal.close()
        network.assert_ledger_balanced()
    finally:
        network.stop()
        for name, level in levels.items():
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(level)
        handler.close()
    yield Run(tmp, secrets)


# -- the scan ---------------------------------------------------------------------------------


def store_of(path: Path, data_dir: Path) -> str:
    relative = path.relative_to(data_dir).as_posix()
    name = path.name
    if relative.startswith("edc/"):
        return "edc-state"
    if name.endswith(".log") or relative.startswith("logs/") or ".log." in name:
        return "logs"
    if name.startswith("switch.sqlite3"):
        return "switch-db"
    if name.startswith("ewarong"):
        return "ewarong-db"
    if name.startswith("bank") and ".sqlite3" in name:
        return "bank-db"
    return "other"


def _patterns(secrets: Secrets) -> list[tuple[str, re.Pattern[bytes]]]:
    patterns = []
    for name, value in secrets.items.items():
        if name.startswith("PIN of"):
            # A PIN is six digits: found only standing alone (not inside a longer number).
            patterns.append((name, re.compile(rb"(?<![0-9])" + re.escape(value.encode()) + rb"(?![0-9])")))
        else:
            patterns.append((name, re.compile(re.escape(value.encode()), re.IGNORECASE)))
            if not name.startswith("PAN"):
                patterns.append((f"{name} (raw bytes)", re.compile(re.escape(bytes.fromhex(value)))))
    return patterns


def _sqlite_rows(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every value of every row of an SQLite database, as (table, bytes)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError:
        return
    try:
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if value is not None:
                        yield table, value if isinstance(value, bytes) else str(value).encode()
    finally:
        conn.close()


def find_hits(path: Path, patterns: list[tuple[str, re.Pattern[bytes]]]) -> list[str]:
    data = path.read_bytes()
    hits = [f"{name} in the file's bytes" for name, pattern in patterns if pattern.search(data)]
    if data.startswith(b"SQLite format 3"):
        for table, value in _sqlite_rows(path):
            hits += [f"{name} in table {table}" for name, pattern in patterns if pattern.search(value)]
    return sorted(set(hits))


def test_the_scan_sees_every_file(network_run: Run) -> None:
    files = [p for p in network_run.data_dir.rglob("*") if p.is_file()]
    found = {store_of(p, network_run.data_dir) for p in files}
    assert {"bank-db", "switch-db", "edc-state", "logs"} <= found, sorted(str(p) for p in files)


@pytest.mark.parametrize("store", STORES)
def test_no_card_data_at_rest(network_run: Run, store: str) -> None:
    patterns = _patterns(network_run.secrets)
    files = [p for p in sorted(network_run.data_dir.rglob("*")) if p.is_file() and store_of(p, network_run.data_dir) == store]
    report = []
    for path in files:
        for hit in find_hits(path, patterns):
            report.append(f"{path.relative_to(network_run.data_dir)}: {hit}")
    assert not report, f"card data at rest in the {store}:\n" + "\n".join(report)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path, network_run: Run) -> None:
    """The scanner itself: a planted PAN, PIN and key are found, in bytes and in rows."""
    patterns = _patterns(network_run.secrets)
    pan = next(v for n, v in network_run.secrets.items.items() if n.startswith("PAN"))
    planted = tmp_path / "planted.log"
    planted.write_text(f"card {pan} pin {network_run.secrets.items['PIN of generated card']} key {demo_key_hex('switch', 'lmk').lower()}\n")
    hits = find_hits(planted, patterns)
    assert any(h.startswith("PAN") for h in hits) and any(h.startswith("PIN of") for h in hits) and any(h.startswith("LMK") for h in hits)
    db = tmp_path / "planted.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", (pan,))
    assert any("in table t" in h for h in find_hits(db, patterns))
