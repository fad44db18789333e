"""`sembako ewarong ...` as the shop keeper uses it: the day's report as CSV or a table, the
price board, the options of the parent command, and a plain message for a typo."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ewarong_pos import cli
from ewarong_pos.cli import ewarong_app
from ewarong_pos.settings import ShopOptions, ShopSettings
from ewarong_pos.store import Payment, ShopStore
from ewarong_pos.rules import Cart
from shared.clock import FixedClock

ENV = {"DATABASE_URL": None, "SEMBAKO_DATA_DIR": None, "COLUMNS": "200"}


def ewarong(data_dir: Path, *args: str):  # noqa: ANN201
    return CliRunner().invoke(ewarong_app, ["--data-dir", str(data_dir), *args], env=ENV)


def refused_plainly(result, fragment: str) -> None:  # noqa: ANN001
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and fragment in result.stderr, result.stderr


def sell_one(data_dir: Path, ewarong_id: str, terminal_id: str) -> None:
    store = ShopStore.open(ShopSettings(data_dir=data_dir), FixedClock(datetime(2026, 11, 3, 10)))
    try:
        store.ensure_demo(ewarong_id)
        cart = store.add_to_cart(ewarong_id, Cart(), "BRS-MED", 5, 150_000)
        assert isinstance(cart, Cart)
        payment = store.begin_payment(ewarong_id, terminal_id, cart)
        assert isinstance(payment, Payment)
        store.complete_payment(payment.id, "000000000001", "AB12CD", "000001", "936000******5678", datetime(2026, 11, 3, 10), pan="9360000912345678")
    finally:
        store.close()


def test_the_days_report_as_csv_with_the_ewarong_given_to_the_parent(tmp_path: Path) -> None:
    sell_one(tmp_path, "EWBRI0000000002", "BRI00002")
    result = ewarong(tmp_path, "--ewarong", "EWBRI0000000002", "report", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[1][:8] == ["barang", "2026-11-03", "EWBRI0000000002", "BRS-MED", "Beras medium", "kg", "5", "65000"]
    assert ["transaksi", "000000000001"] == [rows[2][0], rows[2][3]]


def test_the_report_as_a_table_with_the_ewarong_given_to_the_subcommand(tmp_path: Path) -> None:
    sell_one(tmp_path, "EWBNI0000000003", "BNI00003")
    result = ewarong(tmp_path, "report", "--date", "2026-11-03", "--ewarong", "EWBNI0000000003", "--format", "table")
    assert result.exit_code == 0, result.output
    assert "LAPORAN PENJUALAN HARIAN e-WARONG EWBNI0000000003" in result.stdout
    assert "KPM dilayani     : 1" in result.stdout and "000000000001" in result.stdout


def test_the_price_board_of_a_demo_shop_used_for_the_first_time(tmp_path: Path) -> None:
    result = ewarong(tmp_path, "harga", "--ewarong", "EWMDR0000000048")
    assert result.exit_code == 0, result.output
    assert "PAPAN HARGA" in result.stdout and "EWMDR0000000048" in result.stdout
    assert "Beras medium" in result.stdout and "Gula pasir" not in result.stdout
    assert (tmp_path / "ewarong.sqlite3").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["report", "--date", "2026-13-01"], "Tanggal harus berformat YYYY-MM-DD"),
        (["report", "--date", "03-11-2026"], "Tanggal harus berformat YYYY-MM-DD"),
        (["report"], "Sebutkan hari laporan"),
        (["report", "--date", "2026-11-03", "--format", "xml"], "Format harus csv atau table"),
        (["report", "--date", "2026-11-03", "--ewarong", "EWBNI0000000049"], "e-Warong EWBNI0000000049 tidak dikenal"),
        (["--ewarong", "warung-saya", "harga"], "ID e-Warong harus 15"),
        (["harga", "--ewarong", "EWXYZ0000000001"], "tidak dikenal"),
        (["--switch", "localhost", "harga"], "Alamat switch harus HOST:PORT"),
    ],
)
def test_bad_input_gets_a_plain_message_and_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    refused_plainly(ewarong(tmp_path, *args), fragment)


def test_without_a_subcommand_the_cashier_screen_gets_the_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[ShopOptions] = []
    monkeypatch.setattr(cli, "_load_run_app", lambda: started.append)
    result = ewarong(tmp_path, "--ewarong", "EWBTN0000000007", "--switch", "10.0.0.5:9583")
    assert result.exit_code == 0, result.output
    assert started == [ShopOptions("EWBTN0000000007", "BTN00007", "10.0.0.5", 9583, tmp_path, None)]


def test_a_terminal_of_another_ewarong_is_refused(tmp_path: Path) -> None:
    refused_plainly(ewarong(tmp_path, "--terminal", "BRI00001"), "Terminal BRI00001 milik e-Warong EWBRI0000000001")
