"""The terminal's state file and its printed receipt."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from edc_terminal.receipt import KIND_PURCHASE, WIDTH, ReceiptData, render
from edc_terminal.store import LastPurchase, PendingReversal, StoreError, TerminalState, TerminalStore, WorkingKeys

from tests.edc_terminal.conftest import PAN


def full_state() -> TerminalState:
    return TerminalState(
        tid="BRI00007",
        stan=41,
        batch=3,
        keys=WorkingKeys("A" * 32, "B" * 32, "ABCDEF", "123456"),
        pending_reversals=[PendingReversal({"t": "0400", "11": "000040", "90": "0" * 42}, "2026-11-03T09:00:00", 2)],
        last_purchase=LastPurchase({"t": "0200", "11": "000039"}, "000000000001", "654321", "2026-11-03T08:59:00"),
        in_flight_purchase={"t": "0200", "11": "000041"},
    )


def test_round_trip_is_exact_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, "BRI00007")
    assert store.load() == TerminalState(tid="BRI00007")  # never run here: a fresh state
    store.save(full_state())
    assert store.path == tmp_path / "edc" / "BRI00007.json"
    assert TerminalStore(tmp_path, "BRI00007").load() == full_state()
    assert os.listdir(tmp_path / "edc") == ["BRI00007.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = TerminalStore(tmp_path, "BRI00007")
    store.save(TerminalState(tid="BRI00007", stan=5))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.save(full_state())
    monkeypatch.undo()
    assert store.load().stan == 5
    assert os.listdir(tmp_path / "edc") == ["BRI00007.json"]


def test_unreadable_files_and_bad_terminal_ids_are_refused(tmp_path: Path) -> None:
    store = TerminalStore(tmp_path, "BNI00001")
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(StoreError, match="not a readable terminal state"):
        store.load()
    store.path.write_text('{"tid": "BNI00002", "stan": 1, "batch": 1}')
    with pytest.raises(StoreError, match="holds terminal 'BNI00002'"):
        store.load()
    with pytest.raises(StoreError, match="letters and digits"):
        TerminalStore(tmp_path, "../etc")


def test_receipt_is_narrow_masked_and_in_indonesian() -> None:
    data = ReceiptData(
        bank_name="Bank Tabungan Negara",
        merchant_id="EWBTN0000000012",
        tid="BTN00012",
        at=datetime(2026, 11, 3, 14, 5, 9),
        kind=KIND_PURCHASE,
        pan=PAN,
        rc="00",
        rc_text="Transaksi berhasil",
        stan="000123",
        batch=2,
        amount=1_234_500,
        balance=7_500,
        rrn="000000000077",
        approval_code="A1B2C3",
    )
    text = render(data)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    for expected in ("BANK TABUNGAN NEGARA", "PEMBELIAN SEMBAKO", "03/11/2026 14:05:09", "Rp1.234.500", "Rp7.500",
                     "000000000077", "A1B2C3", "EWBTN0000000012", "BTN00012", "000123", "000002", "RC 00"):  # fmt: skip
        assert expected in text, expected
    assert PAN not in text and f"{PAN[:6]}******{PAN[-4:]}" in text
    assert any(line.startswith("Sisa saldo") for line in lines)
